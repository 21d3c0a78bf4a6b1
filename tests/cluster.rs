//! The scale-out check: HAProxy in front of three instances, one killed with SIGKILL
//! and restarted, one stopped gracefully, all under load; the client must see zero
//! failed requests. Runs `scripts/cluster-test.sh` against the binary under test.

use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn haproxy_cluster_loses_no_request_when_an_instance_dies() {
    if !(have("haproxy") && have("ab")) {
        eprintln!("skipped: needs haproxy and ab (apt-get install haproxy apache2-utils)");
        return;
    }
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/cluster-test.sh"
        ))
        .env("HEARTH_BIN", env!("CARGO_BIN_EXE_hearth"))
        .output()
        .expect("run cluster-test.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cluster-test.sh failed");
    assert!(text.contains("failed:        0"), "{text}");
}
