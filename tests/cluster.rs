//! The scale-out check: HAProxy in front of three instances, one killed with SIGKILL
//! and restarted, one stopped gracefully, all under load; the client must see zero
//! failed requests. Runs `scripts/cluster-test.sh` against the binary under test.

mod common;

use common::require_tool;

use std::process::Command;

#[test]
fn haproxy_cluster_loses_no_request_when_an_instance_dies() {
    if !(require_tool("haproxy") && require_tool("ab") && require_tool("curl")) {
        return;
    }
    // Everything the run writes (pid files, logs, HAProxy's files) stays here.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/cluster-test.sh"
        ))
        .env("HEARTH_BIN", env!("CARGO_BIN_EXE_hearth"))
        .env("CLUSTER_TEST_DIR", dir.path().join("cluster"))
        .output()
        .expect("run cluster-test.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cluster-test.sh failed");
    assert!(text.contains("failed:        0"), "{text}");
}
