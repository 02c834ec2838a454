//! `mirrorlab check` as a user runs it: the real binary on the sample configs, compiler-style
//! output and exit codes.

use std::path::PathBuf;
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sample-configs")
        .join(name)
}

/// Runs `mirrorlab check` on `files`; returns (exit code, stdout).
fn check(files: &[PathBuf]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("check")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn clean_samples_pass_with_no_diagnostics() {
    for name in [
        "reviews-mirror.yaml",
        "reviews-mirror-testing-user-agent.yaml",
        "reviews-mirror-25-percent.yaml",
        "reviews-v2-destination-rule.yaml",
        "reviews-mirrors-two-shadows.yaml",
        "reviews-mirrors-baseline.yaml",
        "reviews-route-actions.yaml",
    ] {
        let (code, out) = check(&[sample(name)]);
        assert_eq!(code, 0, "{name}:\n{out}");
        assert!(out.contains("0 error(s), 0 warning(s)"), "{name}:\n{out}");
    }
}

#[test]
fn the_classic_mistake_is_flagged_ist0101_and_exits_1() {
    let file = sample("reviews-mirror-missing-subset.yaml");
    let (code, out) = check(std::slice::from_ref(&file));
    assert_eq!(code, 1, "{out}");
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}:19: error[IST0101]: ", file.display())),
        "{out}"
    );
    assert!(
        out.contains("resource: VirtualService default/reviews-vs"),
        "{out}"
    );
    assert!(
        out.contains("field:    spec.http[0].mirror.subset"),
        "{out}"
    );
    assert!(out.contains("1 error(s)"), "{out}");

    // Checked together with the DestinationRule it lacks, it is clean.
    let (code, out) = check(&[file, sample("reviews-v2-destination-rule.yaml")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn warnings_alone_exit_0_and_broken_files_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let warn = dir.path().join("warn.yaml");
    std::fs::write(
        &warn,
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    mirror: {host: shadow}
    mirrorPercent: 10
",
    )
    .unwrap();
    let (code, out) = check(std::slice::from_ref(&warn));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(":9: warning[ML0201]:"), "{out}");

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: VirtualService\nspec: [\n").unwrap();
    let (code, out) = check(&[broken]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[ML0002]"), "{out}");

    let (code, out) = check(&[dir.path().join("missing.yaml")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[ML0001]: cannot read the file"), "{out}");
}

#[test]
fn infos_are_printed_and_counted_and_never_fail_check() {
    // A host no ServiceEntry of the files defines may be a Kubernetes Service of the
    // cluster: istioctl analyze without the cluster says IST0101, the lab says info.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("info.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}}]
",
    )
    .unwrap();
    let (code, out) = check(std::slice::from_ref(&file));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(":7: info[ML0401]:"), "{out}");
    assert!(out.contains("IST0101"), "{out}");
    assert!(
        out.trim_end().ends_with("0 error(s), 0 warning(s), 1 info"),
        "{out}"
    );
}
