#!/usr/bin/env python3
"""`mirrorlab replay --speed max` against bench.py's upstreams: nginx primary and fast
shadow, the lab 100% mirrored as in case D. Writes a HAR of N GET requests, replays it
with a concurrency limit, and prints requests/s (from the replay's own start and end log
lines) beside case D's wrk figure when --with-d is given.

    CARGO_TARGET_DIR=/work/target-base cargo build --release --bin mirrorlab
    scripts/bench_replay.py --mirrorlab /work/target-base/release/mirrorlab --requests 50000 --with-d
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import bench


def har(path, n):
    entries = [{
        "startedDateTime": f"2024-11-30T10:00:{i * 60 // n:02d}.{i % 1000:03d}Z",
        "time": 1.0,
        "request": {"method": "GET", "url": f"http://primary.bench/reviews/{i % 100}",
                    "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "queryString": [],
                    "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [], "content": {"size": 0, "mimeType": ""}, "redirectURL": "",
                     "headersSize": -1, "bodySize": 0},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0},
    } for i in range(n)]
    with open(path, "w") as f:
        json.dump({"log": {"version": "1.2", "creator": {"name": "bench", "version": "1"},
                           "entries": entries}}, f)


def stamp(line):
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))


def replay(binary, work, n, concurrency, fast_log):
    cfg = os.path.join(work, "R.yaml")
    with open(cfg, "w") as f:
        f.write(bench.lab_config(bench.SHADOW_FAST, 100))
    traffic = os.path.join(work, "R.har")
    har(traffic, n)
    report = os.path.join(work, "R-report.json")
    before = bench.count_lines(fast_log)
    proc = subprocess.run(
        [binary, "replay", traffic, cfg, "--speed", "max", "--concurrency", str(concurrency),
         "--report", report],
        capture_output=True, text=True, env={**os.environ, "RUST_LOG": "info"}, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"replay failed: {proc.stderr[-2000:]}")
    lines = proc.stderr.splitlines()
    start = next(stamp(l) for l in lines if "mirrorlab::lab::replay" in l and " replaying" in l)
    done = next(l for l in lines if "replay done" in l)
    seconds = (stamp(done) - start).total_seconds()
    shadow = bench.settle(fast_log, quiet=1.0) - before
    with open(report) as f:
        lab = bench.lab_mirrors(json.load(f))
    return {"requests": n, "seconds": seconds, "rps": n / seconds,
            "summary": " ".join(re.findall(r"(?:sent|answered|failed)=\d+", done)),
            "shadow": shadow, "lab": lab}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirrorlab", required=True)
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--with-d", action="store_true", help="also run bench.py's case D (wrk)")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mirrorlab-bench-replay-")
    nginxes = {}
    results = {}
    try:
        nginxes = bench.start_nginxes(work)
        fast_log = f"{work}/shadow-fast.log"
        if args.with_d:
            bench.run_cases(args, {"D"}, work, results,
                            {k: bench.nginx_pids(v) for k, v in nginxes.items()})
        r = replay(args.mirrorlab, work, args.requests, args.concurrency, fast_log)
    finally:
        bench.stop_nginxes(nginxes)
    print(f"R  mirrorlab replay --speed max --concurrency {args.concurrency}: "
          f"{r['requests']} requests in {r['seconds']:.2f} s = {r['rps']:.0f} req/s; "
          f"{r['summary']}; shadow got {r['shadow']}; lab {r['lab']}")
    if "D" in results:
        d = results["D"]
        print(f"D  mirrorlab 100%, wrk -c32: {d['rps']:.0f} req/s (p50 {d['p50']:.3f} ms); "
              f"R/D {r['rps'] / d['rps']:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
