//! The sample traffic files in sample-configs/ load, and hold the same requests: the HAR
//! saved from a run against the demo, and the `.gor` written from it by
//! scripts/har_to_gor.py.

use std::path::Path;

use mirrorlab::replay::{SourceOptions, TrafficFormat, load_traffic};

#[test]
fn the_sample_har_and_gor_hold_the_same_requests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-configs");
    let har =
        load_traffic(&root.join("traffic.har"), &SourceOptions::default()).expect("HAR loads");
    let gor =
        load_traffic(&root.join("traffic.gor"), &SourceOptions::default()).expect(".gor loads");
    assert_eq!(
        (har.format, gor.format),
        (TrafficFormat::Har, TrafficFormat::GoReplay)
    );
    assert_eq!(
        gor.not_requests,
        gor.requests.len(),
        "each request has its response"
    );
    assert!(har.requests.len() >= 10);
    assert_eq!(har.requests.len(), gor.requests.len());
    for (h, g) in har.requests.iter().zip(&gor.requests) {
        assert_eq!(
            (&h.method, &h.authority, &h.target),
            (&g.method, &g.authority, &g.target)
        );
        assert_eq!(h.body, g.body);
        let skew = h.offset.abs_diff(g.offset);
        assert!(
            skew.as_micros() <= 1,
            "offsets agree: {:?} and {:?}",
            h.offset,
            g.offset
        );
        assert_eq!(h.headers.get("user-agent"), g.headers.get("user-agent"));
    }
    assert!(
        har.requests
            .iter()
            .any(|r| r.method == http::Method::POST && !r.body.is_empty())
    );
}
