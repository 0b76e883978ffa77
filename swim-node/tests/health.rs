//! `swim-node health` and `members --admin host:port` against real `swim-node run`
//! processes: the exit code a `HEALTHCHECK` or Kubernetes exec probe reads, and the one-line
//! reason when the answer is no.

use std::time::Duration;

mod support;

use support::*;

fn one_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

#[test]
fn health_exits_zero_when_live_or_ready_and_gives_one_line_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs(d, &["h0", "h1"]);
    // h1's only seed is a port nobody answers on: it is live, and never ready.
    let mut lonely = spawn(d, "h1", Some(&format!("127.0.0.1:{}", free_udp())));
    let lonely_admin = lonely.admin.trim_start_matches("http://").to_string();
    assert!(
        eventually(Duration::from_secs(15), || swim(&[
            "health",
            "--admin",
            &lonely_admin
        ])
        .status
        .success()),
        "{}",
        log_of(d, "h1")
    );
    let out = swim(&["health", "--admin", &lonely_admin, "--ready"]);
    assert!(!out.status.success(), "{out:?}");
    let err = one_line(&out);
    assert!(
        err.contains("not ready") && err.contains("503") && err.contains("not joined"),
        "{err}"
    );

    // h0 has no seeds: it founds the cluster, so it is ready; the URL form works too.
    let mut founder = spawn(d, "h0", None);
    let founder_admin = founder.admin.trim_start_matches("http://").to_string();
    assert!(
        eventually(Duration::from_secs(15), || swim(&[
            "health",
            "--admin",
            &founder_admin,
            "--ready"
        ])
        .status
        .success()),
        "{}",
        log_of(d, "h0")
    );
    let out = swim(&["health", "--admin", &founder.admin, "--ready"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ready");

    // `members --admin` takes host:port like `run --admin`.
    let out = swim(&["members", "--admin", &founder_admin, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.iter().any(|m| m["name"] == "h0"), "{listed:?}");

    // Nobody there: not live, and says so.
    founder.child.kill().unwrap();
    founder.child.wait().unwrap();
    let out = swim(&["health", "--admin", &founder_admin, "--timeout", "1s"]);
    assert!(!out.status.success(), "{out:?}");
    let err = one_line(&out);
    assert!(
        err.contains("not live") && err.contains("no answer"),
        "{err}"
    );

    // An address it cannot use is refused with the form it wants.
    let out = swim(&["health", "--admin", "localhost"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(one_line(&out).contains("expected host:port"), "{out:?}");

    // The lonely member says why no seed answers (nobody listens there: the dial times out).
    assert!(
        eventually(Duration::from_secs(20), || {
            let log = log_of(d, "h1");
            log.contains("WARN")
                && log.contains("no seed answered the join")
                && log.contains("no QUIC handshake within the dial timeout")
        }),
        "{}",
        log_of(d, "h1")
    );
    let _ = lonely.child.kill();
    let _ = lonely.child.wait();
    // Its log went to a file, not a terminal: plain text, no colour codes.
    let log = log_of(d, "h1");
    assert!(log.contains("started") && !log.contains('\u{1b}'), "{log}");
}
