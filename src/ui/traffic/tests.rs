//! The panel's model, filter and table on their own (the app's tests drive the rest).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::capture::{CapturedBody, CapturedResponse, PrimaryRecord};
use crate::lab::control::compare::body_text;

fn exchange(method: http::Method, uri: &str, status: u16, body: &[u8]) -> Exchange {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("reviews"),
    );
    headers.insert("user-agent", http::HeaderValue::from_static("it's me"));
    Exchange {
        tunnel: None,
        id: 7,
        request_id: "r-7".to_owned(),
        started_at: std::time::SystemTime::now(),
        trace: None,
        request: crate::capture::CapturedRequest {
            method,
            uri: uri.to_owned(),
            authority: "reviews".to_owned(),
            version: http::Version::HTTP_11,
            headers,
            body: CapturedBody {
                bytes: bytes::Bytes::copy_from_slice(body),
                total_len: body.len() as u64,
                truncated: false,
            },
        },
        primary: Some(PrimaryRecord {
            target: Arc::from("reviews/v1"),
            endpoint: "127.0.0.1:9081".into(),
            attempts: Vec::new(),
            outcome: UpstreamOutcome::Response(CapturedResponse {
                trailers: None,
                status: http::StatusCode::from_u16(status).unwrap(),
                headers: http::HeaderMap::new(),
                body: CapturedBody::default(),
                ttfb: Duration::from_millis(1),
                total: Duration::from_millis(2),
                version: http::Version::HTTP_11,
            }),
        }),
        shadows: Vec::new(),
        forwarded: None,
        flags: Default::default(),
    }
}

#[test]
fn copy_as_curl_goes_through_the_proxy_with_the_original_host_and_body() {
    let e = exchange(http::Method::POST, "/reviews/1?x=1", 200, b"{\"a\":1}");
    let curl = curl_command(&e, Some("127.0.0.1:15001"));
    assert_eq!(
        curl,
        "curl -sS -X POST -H 'host: reviews' -H 'user-agent: it'\\''s me' \
         --data-binary '{\"a\":1}' 'http://127.0.0.1:15001/reviews/1?x=1'"
    );
}

#[test]
fn the_filter_matches_method_path_status_class_and_route() {
    let e = exchange(http::Method::GET, "/reviews/3", 503, b"");
    let none = |_| false;
    let f = |f: TrafficFilter| f.matches(&e, none);
    assert!(f(TrafficFilter::default()));
    assert!(f(TrafficFilter {
        method: "get".into(),
        ..Default::default()
    }));
    assert!(!f(TrafficFilter {
        method: "POST".into(),
        ..Default::default()
    }));
    assert!(f(TrafficFilter {
        path: "views/3".into(),
        ..Default::default()
    }));
    assert!(f(TrafficFilter {
        status: "5xx".into(),
        ..Default::default()
    }));
    assert!(f(TrafficFilter {
        status: "503".into(),
        ..Default::default()
    }));
    assert!(!f(TrafficFilter {
        status: "2xx".into(),
        ..Default::default()
    }));
    assert!(f(TrafficFilter {
        route: "no route".into(),
        ..Default::default()
    }));
    assert!(!f(TrafficFilter {
        differs_only: true,
        ..Default::default()
    }));
    assert!(
        TrafficFilter {
            differs_only: true,
            ..Default::default()
        }
        .matches(&e, |id| id == 7)
    );
}

#[test]
fn the_filter_picks_an_action_and_a_response_flag() {
    let none = |_| false;
    let unrouted = exchange(http::Method::GET, "/x", 404, b"");
    let mut aborted = exchange(http::Method::GET, "/reviews/1", 418, b"");
    aborted.trace = Some(crate::routing::RouteTrace {
        action: crate::routing::ActionKind::FaultAbort,
        ..Default::default()
    });
    aborted.flags = crate::capture::ResponseFlags::FI;
    let action = |a: &str| TrafficFilter {
        action: a.into(),
        ..Default::default()
    };
    let flag = |f: &str| TrafficFilter {
        flag: f.into(),
        ..Default::default()
    };
    assert!(action("fault_abort").matches(&aborted, none));
    assert!(!action("forward").matches(&aborted, none));
    assert!(action(NO_ROUTE).matches(&unrouted, none));
    assert!(!action(NO_ROUTE).matches(&aborted, none));
    assert!(flag("FI").matches(&aborted, none));
    assert!(!flag("UF").matches(&aborted, none));
    assert!(!flag("FI").matches(&unrouted, none));
}

#[test]
fn bodies_are_decoded_and_pretty_printed() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"b":[1,2],"a":"x"}"#).unwrap();
    let bytes = gz.finish().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("gzip"),
    );
    let body = CapturedBody {
        total_len: bytes.len() as u64,
        bytes: bytes::Bytes::from(bytes),
        truncated: false,
    };
    let text = body_text(&body, &headers);
    assert!(text.contains("\"b\": [\n    1,"), "{text}");
    let cut = CapturedBody {
        bytes: bytes::Bytes::from_static(b"hello"),
        total_len: 100,
        truncated: true,
    };
    assert!(
        body_text(&cut, &http::HeaderMap::new())
            .ends_with("(cut at the capture cap: 5 of 100 bytes captured)")
    );
}

/// Whether a row showing `path` is laid out (inside the table's visible part).
fn row_shown(h: &egui_kittest::Harness<'_, TrafficPanel>, path: &str) -> bool {
    use egui_kittest::kittest::Queryable as _;
    h.query_by_label(path).is_some()
}

#[test]
fn follow_newest_keeps_the_newest_row_in_view_while_rows_arrive() {
    let arriving = std::rc::Rc::new(std::cell::Cell::new(true));
    let flowing = std::rc::Rc::clone(&arriving);
    let mut next = 0u64;
    let mut arrive = move |panel: &mut TrafficPanel, n: u64| {
        let rows: Vec<_> = (0..n)
            .map(|_| {
                let mut e = exchange(http::Method::GET, &format!("/row/{next}"), 200, b"");
                e.id = next;
                next += 1;
                Arc::new(e)
            })
            .collect();
        panel.push(rows, None);
    };
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1200.0, 700.0))
        .build_ui_state(
            move |ui, panel: &mut TrafficPanel| {
                // A few exchanges every frame, as the demo's traffic brings them.
                if flowing.get() {
                    arrive(panel, 3);
                }
                TrafficView {
                    panel,
                    snapshot: None,
                    proxy: None,
                }
                .ui(ui);
            },
            TrafficPanel::default(),
        );
    for round in 0..10 {
        for _ in 0..15 {
            h.step();
        }
        // A scroll lands in the frame after it is asked for: one frame without arrivals,
        // then the newest row must be on screen.
        arriving.set(false);
        h.step();
        arriving.set(true);
        let newest = h.state().len() as u64 - 1;
        assert!(
            row_shown(&h, &format!("/row/{newest}")),
            "round {round}: the newest row ({newest}) is not in view"
        );
    }
    assert!(!row_shown(&h, "/row/0"), "the oldest row scrolled away");

    // Selecting a row stops following: the row stays put as more arrive.
    let newest = h.state().len() as u64 - 1;
    let path = format!("/row/{newest}");
    {
        use egui_kittest::kittest::Queryable as _;
        h.get_by_label(&path).click();
    }
    for _ in 0..60 {
        h.step();
    }
    assert!(!h.state().follow);
    assert_eq!(h.state().selected, Some(newest));
    assert!(row_shown(&h, &path), "the selected row stays in view");
}

#[test]
fn the_table_keeps_its_bound_and_its_filter_in_step() {
    let mut panel = TrafficPanel::default();
    panel.filter.method = "POST".to_owned();
    let rows = (0..MAX_ROWS + 10).map(|i| {
        let method = if i % 2 == 0 {
            http::Method::POST
        } else {
            http::Method::GET
        };
        let mut e = exchange(method, "/", 200, b"");
        e.id = i as u64;
        Arc::new(e)
    });
    panel.push(rows, None);
    assert_eq!(panel.len(), MAX_ROWS);
    assert_eq!(panel.shown(), MAX_ROWS / 2);
    assert!(panel.find(9).is_none(), "the oldest rows left");
    assert!(panel.find(10).is_some());
}

#[test]
fn the_table_is_bounded_in_bytes_and_a_pause_holds_rows_aside_within_the_bound() {
    let body = vec![b'x'; 10_000];
    let bounds = RowBounds {
        max_rows: 1_000,
        max_bytes: 100_000,
    };
    let mut panel = TrafficPanel::with_bounds(bounds);
    let rows = |from: u64, n: u64| {
        let body = body.clone();
        (from..from + n).map(move |i| {
            let mut e = exchange(http::Method::POST, "/big", 200, &body);
            e.id = i;
            Arc::new(e)
        })
    };
    panel.push(rows(0, 50), None);
    assert!(
        panel.bytes() <= bounds.max_bytes,
        "{} bytes kept",
        panel.bytes()
    );
    assert!(
        panel.len() < 10,
        "{} rows of 10 kB kept under 100 kB",
        panel.len()
    );
    assert!(panel.find(49).is_some(), "the newest stays");
    assert_eq!(
        panel.shown(),
        panel.len(),
        "the filter follows the evictions"
    );

    panel.paused = true;
    panel.push(rows(50, 30), None);
    assert!(panel.find(50).is_none(), "paused: not in the table yet");
    let (held, dropped) = panel.held();
    assert!(held < 10 && dropped > 20, "{held} held, {dropped} dropped");
    panel.paused = false;
    panel.push(std::iter::empty(), None);
    assert!(panel.find(79).is_some(), "resumed: the held rows came in");
    assert!(panel.bytes() <= bounds.max_bytes);
}
