//! gRPC messages read with the service's descriptors: a VirtualService's
//! `mirrorlab.dev/grpc-descriptors` names a `FileDescriptorSet` (sample-configs/reviews.pb
//! for the demo), and the diff and the Traffic detail show fields by name instead of by
//! number. The gRPC demo's servers on 127.0.0.1, ephemeral ports; bounded.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use mirrorlab::demo::{TrafficGenerator, TrafficSettings};
use mirrorlab::lab::{CompiledConfig, Lab, LabSettings};
use tokio_util::sync::CancellationToken;

const SAMPLE: &str = include_str!("../sample-configs/reviews-grpc.yaml");

fn sample_pb() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-configs/reviews.pb")
}

#[test]
fn the_sample_descriptor_set_is_the_demo_service() {
    let built = mirrorlab::demo::grpc::descriptor_set();
    if std::env::var_os("MIRRORLAB_WRITE_SAMPLES").is_some() {
        std::fs::write(sample_pb(), &built).expect("write reviews.pb");
    }
    let committed = std::fs::read(sample_pb()).expect("sample-configs/reviews.pb");
    assert_eq!(
        committed, built,
        "reviews.pb matches reviews.proto (MIRRORLAB_WRITE_SAMPLES=1 rewrites it)"
    );
}

#[test]
fn a_descriptor_file_that_does_not_load_is_a_warning_at_its_annotation() {
    let yaml = SAMPLE.replace(
        "mirrorlab.dev/grpc-descriptors: reviews.pb",
        "mirrorlab.dev/grpc-descriptors: no-such.pb",
    );
    let compiled = CompiledConfig::from_text("sample-configs/reviews-grpc.yaml", &yaml)
        .unwrap_or_else(|e| panic!("config refused: {e}"));
    assert_eq!(
        compiled.ignore_errors.len(),
        1,
        "{:?}",
        compiled.ignore_errors
    );
    let problem = &compiled.ignore_errors[0];
    assert!(
        problem.contains("mirrorlab.dev/grpc-descriptors") && problem.contains("no-such.pb"),
        "{problem}"
    );
    assert!(
        problem.starts_with("sample-configs/reviews-grpc.yaml:"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_diffs_name_the_fields_v2_changed() {
    let handle = tokio::runtime::Handle::current();
    let (services, yaml) = common::start_grpc_demo(&handle);
    // The sample's relative path resolves against the config file's directory.
    let file = sample_pb()
        .with_file_name("reviews-grpc.yaml")
        .display()
        .to_string();
    let compiled = CompiledConfig::from_text(&file, &yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        compiled.ignore_errors.is_empty(),
        "{:?}",
        compiled.ignore_errors
    );
    let lab = Lab::start(
        &handle,
        CancellationToken::new(),
        LabSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Some(1),
            analysis: compiled.analysis_settings(Default::default()),
            ..LabSettings::default()
        },
        compiled.table,
    )
    .expect("lab starts");
    let settings =
        TrafficSettings::new(lab.local_addr(), Some("reviews".to_owned()), 100.0).with_grpc(true);
    let traffic =
        TrafficGenerator::start(&handle, CancellationToken::new(), settings).expect("traffic");
    let exchanges = common::wait_for_exchanges(lab.captures(), 20, Duration::from_secs(10)).await;
    traffic.stop().await;
    let snapshot = lab.analysis();
    let mut summary_added = 0;
    let mut by_number = 0;
    for exchange in &exchanges {
        let comparison = mirrorlab::lab::control::compare::compare(exchange, 0, &snapshot);
        let Ok(diff) = &comparison.diff else { continue };
        if let mirrorlab::analysis::diff::BodyComparison::Json { differences } =
            &diff.body.comparison
        {
            summary_added += differences
                .iter()
                .filter(|d| d.pointer == "/summary")
                .count();
            by_number += differences.iter().filter(|d| d.pointer == "/4").count();
        }
        if summary_added > 0 {
            assert!(
                comparison.shadow_body.contains("\"average_stars\""),
                "{}",
                comparison.shadow_body
            );
            assert!(
                comparison.primary_body.contains("\"podname\""),
                "{}",
                comparison.primary_body
            );
        }
    }
    assert!(
        summary_added >= 10,
        "v2's summary named in {summary_added} diffs"
    );
    assert_eq!(by_number, 0, "no field read by number with the descriptors");
    lab.shutdown(Duration::from_secs(5)).await;
    services.stop().await;
}
