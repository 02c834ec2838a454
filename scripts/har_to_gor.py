#!/usr/bin/env python3
"""Writes the requests of a HAR file as a GoReplay capture (`gor --output-file` format:
buger/goreplay protocol.go, payloadHeader and payloadSeparator), each followed by its
recorded response as a type 2 payload, so sample-configs/traffic.gor holds the same
traffic as sample-configs/traffic.har.

    scripts/har_to_gor.py sample-configs/traffic.har > sample-configs/traffic.gor
"""
import datetime
import json
import sys
import uuid

SEPARATOR = "\n\U0001F435\U0001F648\U0001F649\n"
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def nanos(started):
    t = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def main(path):
    har = json.load(open(path, encoding="utf-8"))
    out = sys.stdout.buffer
    for entry in har["log"]["entries"]:
        req = entry["request"]
        url = req["url"].split("://", 1)[1]
        host, _, rest = url.partition("/")
        body = (req.get("postData") or {}).get("text", "").encode()
        head = [f"{req['method']} /{rest} HTTP/1.1", f"Host: {host}"]
        head += [f"{h['name']}: {h['value']}" for h in req["headers"] if h["name"].lower() not in HOP]
        if body:
            head.append(f"Content-Length: {len(body)}")
        ident = uuid.uuid4().hex[:24]
        at = nanos(entry["startedDateTime"])
        latency = int(entry["time"] * 1_000_000)
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        out.write(f"1 {ident} {at} {latency}\n".encode() + message + SEPARATOR.encode())
        resp = entry["response"]
        text = (resp.get("content") or {}).get("text", "").encode()
        status = f"HTTP/1.1 {resp['status']} {resp['statusText']}\r\nContent-Length: {len(text)}\r\n\r\n"
        out.write(f"2 {ident} {at + latency} {latency}\n".encode() + status.encode() + text + SEPARATOR.encode())


if __name__ == "__main__":
    main(sys.argv[1])
