//! Connection-specific ("hop-by-hop") header fields, which a proxy must not forward
//! (RFC 9110 section 7.6.1).

use http::header::{CONNECTION, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue};

/// Fields RFC 9110 section 7.6.1 names as connection-specific even when `Connection` does
/// not list them, `Connection` itself first.
static ALWAYS_HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes the `Connection` field, every field it names, and the fields that are always
/// connection-specific (`Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`,
/// `Upgrade`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false);
}

/// A request's hop-by-hop fields removed, except `TE: trailers`: Envoy's `sanitizeTEHeader`
/// (`source/common/http/conn_manager_utility.cc`) keeps `TE` set to exactly `trailers` when
/// the client's `TE` names it (gRPC requires it) and removes it otherwise.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, true);
}

fn strip(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // Most messages carry none of these, or only `Connection`: one pass over the names
    // (cheap comparisons) finds which are there, so only those are hashed and removed.
    let mut present = [false; 6];
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            present[i] = true;
        }
    }
    if present[0] {
        remove_connection_options(headers);
        present[0] = false;
    }
    let te_trailers = keep_te_trailers && present[3] && names_trailers(headers);
    for (name, present) in ALWAYS_HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Removes `Connection` and every field it names, with one lookup of `Connection`. Nearly
/// every `Connection` an upstream sends says only `keep-alive`, one of the fixed names
/// (removed by the caller anyway): such a value is not split or parsed.
fn remove_connection_options(headers: &mut HeaderMap) {
    let http::header::Entry::Occupied(connection) = headers.entry(CONNECTION) else {
        return;
    };
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in connection.iter() {
        if value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        let Ok(value) = value.to_str() else {
            continue;
        };
        listed.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|option| !option.eq_ignore_ascii_case("keep-alive"))
                .filter_map(|option| HeaderName::from_bytes(option.as_bytes()).ok()),
        );
    }
    connection.remove_entry_mult();
    for name in listed {
        headers.remove(name);
    }
}

/// The position of `name` in [`ALWAYS_HOP_BY_HOP`]: the length first, which rules out
/// nearly every name without comparing it.
fn hop_index(name: &HeaderName) -> Option<usize> {
    let text = name.as_str();
    let candidates: &[usize] = match text.len() {
        2 => &[3],
        7 => &[5],
        10 => &[0, 2],
        16 => &[1],
        17 => &[4],
        _ => return None,
    };
    candidates
        .iter()
        .copied()
        .find(|&i| ALWAYS_HOP_BY_HOP[i].as_str() == text)
}

/// Whether a `TE` field lists `trailers` (a token, maybe with parameters).
fn names_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| {
            let name = token.split(';').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case("trailers")
        })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_request_keeps_te_trailers_and_nothing_else_of_te() {
        let mut headers = HeaderMap::new();
        headers.insert(TE, HeaderValue::from_static("gzip, trailers;q=1"));
        strip_request_hop_by_hop(&mut headers);
        assert_eq!(headers[TE], "trailers");
        let mut headers = HeaderMap::new();
        headers.insert(TE, HeaderValue::from_static("gzip"));
        strip_request_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(TE));
        let mut headers = HeaderMap::new();
        headers.insert(TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(TE), "a response keeps no TE");
    }

    #[test]
    fn every_fixed_name_is_found_by_its_length_and_no_other_name_is() {
        for (i, name) in ALWAYS_HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name), Some(i), "{name}");
        }
        for other in ["content-length", "host", "server", "x-envoy-te", "tE"] {
            let name = HeaderName::from_bytes(other.as_bytes()).unwrap();
            let expected = (other.eq_ignore_ascii_case("te")).then_some(3);
            assert_eq!(hop_index(&name), expected, "{other}");
        }
    }

    #[test]
    fn removes_fields_named_by_connection_and_the_fixed_set() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private-Hop"),
        );
        headers.insert("x-private-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-end-to-end", HeaderValue::from_static("kept"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["authorization", "x-end-to-end"]);
    }
}
