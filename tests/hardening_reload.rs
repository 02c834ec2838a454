//! Hot reload of broken YAML keeps the old config: `mirrorlab run` watching a file that an
//! editor breaks in the ways editors do (a syntax error, a save caught half-written, an
//! emptied file, a deleted file). The routes in force keep serving until a good config
//! arrives, and that one is applied.

mod common;

use std::time::Duration;

use common::{Mesh, client};

/// Longer than the run's file watch interval (1 s), so a change has been seen.
const SETTLE: Duration = Duration::from_millis(2500);

async fn status_of(addr: &str) -> u16 {
    client()
        .get(format!("http://{addr}/reviews/1"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the proxy answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_half_written_emptied_or_deleted_files_keep_the_old_routes_serving() {
    let mesh = Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    let good = mesh.yaml(common::TO_V1_MIRRORED_NAMED);
    std::fs::write(&config, &good).expect("write config");
    let common::RunChild {
        mut child,
        addr,
        logs,
        ..
    } = common::spawn_run([
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--duration".as_ref(),
        "120".as_ref(),
        "--report".as_ref(),
        dir.path().join("report.json").as_os_str(),
    ])
    .await;
    assert_eq!(status_of(&addr).await, 200);

    let half = &good[..good.len() * 2 / 3];
    let breakages: [(&str, Option<String>); 5] = [
        (
            "a YAML syntax error",
            Some(good.replace("  hosts:\n  - reviews\n", "  hosts: [reviews\n")),
        ),
        ("a save caught half-written", Some(half.to_owned())),
        ("an emptied file", Some(String::new())),
        (
            "a file of comments only",
            Some("# nothing here yet\n".to_owned()),
        ),
        ("a deleted file", None),
    ];
    for (what, text) in &breakages {
        match text {
            Some(text) => std::fs::write(&config, text).expect("write broken config"),
            None => std::fs::remove_file(&config).expect("delete config"),
        }
        tokio::time::sleep(SETTLE).await;
        for _ in 0..5 {
            assert_eq!(
                status_of(&addr).await,
                200,
                "after {what}, the old routes serve"
            );
        }
    }
    let before = mesh.v3.received().len();
    // A good edit is still picked up afterwards: traffic moves to v3.
    std::fs::write(
        &config,
        mesh.yaml(&common::TO_V1_MIRRORED_NAMED.replace("subset: v1", "subset: v3")),
    )
    .expect("write new config");
    let mut moved = false;
    for _ in 0..50 {
        assert_eq!(status_of(&addr).await, 200);
        if mesh.v3.received().len() > before {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "a good config after the broken ones is applied");
    let pid = child.id().expect("child pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let logs = logs.await.expect("stderr");
    assert!(
        logs.matches("config change refused").count() >= breakages.len(),
        "each breakage is refused and logged; stderr:\n{logs}"
    );
}
