//! The real `swim-node` binary as separate processes: certificates from `swim-node cert`,
//! three `run` processes, kill -9 and SIGTERM, bad configs, and the demo.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::*;

#[test]
fn three_processes_join_detect_a_kill_and_see_a_graceful_leave() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir, &["n0", "n1", "n2"]);
    let mut p0 = spawn(dir, "n0", None);
    // One seed by address, one by DNS name (resolved by the node, again on each retry).
    let mut p1 = spawn(dir, "n1", Some(&format!("127.0.0.1:{}", p0.udp)));
    let mut p2 = spawn(dir, "n2", Some(&format!("localhost:{}", p0.udp)));
    let all_alive = |p: &Proc| members(p).iter().filter(|m| m["state"] == "alive").count() == 3;
    assert!(
        eventually(Duration::from_secs(30), || [&p0, &p1, &p2]
            .iter()
            .all(|p| all_alive(p))),
        "logs:\n{}\n{}\n{}",
        log_of(dir, "n0"),
        log_of(dir, "n1"),
        log_of(dir, "n2")
    );
    assert!(get(&format!("{}/health/ready", p1.admin)).is_some());
    let out = swim(&["members", "--admin", &p1.admin, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.iter().filter(|m| m["state"] == "alive").count(), 3);
    let table = swim(&["members", "--admin", &p1.admin]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("n2"),
        "{table:?}"
    );
    assert!(get(&format!("{}/health/live", p1.admin)).is_some());

    // /metrics is Prometheus text and has both headline metrics from the start.
    let text = get(&format!("{}/metrics", p0.admin)).unwrap();
    let samples = parse_prometheus(&text);
    assert!(
        samples
            .iter()
            .any(|(s, _)| s.starts_with("swim_false_positives_total")),
        "{text}"
    );
    // The detection histogram is there from the start, with no sample yet.
    let count0 = metric(&p0, "swim_detection_latency_seconds_count").unwrap_or(0.0);

    // kill -9: the others declare it dead, and their detection histogram moves.
    p2.child.kill().unwrap();
    p2.child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            state_of(&p0, "n2").as_deref() == Some("dead")
                && state_of(&p1, "n2").as_deref() == Some("dead")
        }),
        "n0: {:?}\nn1: {:?}",
        members(&p0),
        members(&p1)
    );
    assert!(eventually(Duration::from_secs(10), || {
        metric(&p0, "swim_detection_latency_seconds_count").unwrap_or(0.0) > count0
    }));
    let text = get(&format!("{}/metrics", p0.admin)).unwrap();
    assert!(
        parse_prometheus(&text)
            .iter()
            .any(|(s, _)| s.starts_with("swim_detection_latency_seconds_bucket{le=")),
        "{text}"
    );

    // SIGTERM: a graceful leave, seen as left, and exit code 0.
    let status = Command::new("kill")
        .args(["-TERM", &p1.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = p1.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "n1 did not exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "exit status {exit:?}; log:\n{}",
        log_of(dir, "n1")
    );
    assert!(eventually(Duration::from_secs(10), || state_of(&p0, "n1")
        .as_deref()
        == Some("left")));
    assert!(
        log_of(dir, "n0").contains("member dead"),
        "one log line per membership change"
    );
    let _ = p0.child.kill();
    let _ = p0.child.wait();
    let _ = (&p1.name, &p2.name);
}

#[test]
fn a_seed_of_another_cluster_is_named_as_the_cause_and_counted_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir, &["c0", "c1"]);
    let started = Instant::now();
    let mut seed = spawn(dir, "c0", None);
    let seed_addr = format!("127.0.0.1:{}", seed.udp);
    let other = Spawn {
        env: &[("SWIM_CLUSTER_NAME", "other")],
        ..Spawn::default()
    };
    let mut joiner = spawn_with(dir, "c1", Some(&seed_addr), &other);
    // The join loop warns after each wait (1 s, then doubling), naming what its own counters
    // saw meanwhile.
    let warned = eventually(Duration::from_secs(20), || {
        log_of(dir, "c1")
            .lines()
            .any(|l| l.contains("no seed answered the join") && l.contains("cluster_name differs"))
    });
    let by_us = metric(&seed, "swim_cluster_mismatches_total{by=\"us\"}");
    let by_peer = metric(&joiner, "swim_cluster_mismatches_total{by=\"peer\"}");
    let joined = metric(&joiner, "swim_joined");
    let elapsed = started.elapsed();
    for p in [&mut seed, &mut joiner] {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    let (seed_log, joiner_log) = (log_of(dir, "c0"), log_of(dir, "c1"));
    assert!(warned, "the joiner's WARN names no cause:\n{joiner_log}");
    assert!(
        joiner_log.contains("a peer refused our push-pull") && joiner_log.contains("other"),
        "{joiner_log}"
    );
    assert_eq!(joined, Some(0.0));
    let refused = by_us.unwrap_or(0.0);
    assert!(refused >= 1.0, "the seed counted {by_us:?}\n{seed_log}");
    assert!(by_peer >= Some(1.0), "the joiner counted {by_peer:?}");
    // The seed logs its refusals, rate-limited: one line per 10 s at most.
    let lines = seed_log
        .matches("refused a push-pull from another cluster")
        .count();
    let allowed = 1 + elapsed.as_secs() as usize / 10;
    assert!(
        (1..=allowed).contains(&lines),
        "{lines} lines for {refused} refusals in {elapsed:?}:\n{seed_log}"
    );
}

#[test]
fn bad_config_is_refused_with_a_message_naming_the_problem_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs(d, &["b0"]);
    let tls = |f: &str| -> PathBuf { d.join("b0").join(f) };
    let good = format!(
        "name = \"b0\"\nbind = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        free_udp(),
        free_tcp(),
        tls("ca.pem"),
        tls("b0.pem"),
        tls("b0.key")
    );
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (format!("{good}surprise = 1\n"), vec![], "surprise"),
        (good.replace("b0.pem", "missing.pem"), vec![], "tls.cert"),
        (
            good.clone(),
            vec!["--bind".into(), "127.0.0.1:notaport".into()],
            "bind",
        ),
        (
            good.clone(),
            vec!["--probe-timeout".into(), "5s".into()],
            "swim.probe_timeout",
        ),
    ];
    for (config, flags, key) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let started = Instant::now();
        let (ok, stderr) = run_bad(d, &flags, Some(&config));
        assert!(!ok, "must fail for {key}");
        assert!(stderr.contains(key), "message must name {key}: {stderr}");
        assert!(!stderr.contains("started"), "nothing may start: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // The ports of the refused config were never taken: they are still free to bind.
    let bind = good
        .lines()
        .find(|l| l.starts_with("bind"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    let admin = good
        .lines()
        .find(|l| l.starts_with("admin"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(UdpSocket::bind(&bind).is_ok());
    assert!(TcpListener::bind(&admin).is_ok());
}

#[test]
fn the_demo_runs_to_completion() {
    let out = Command::new(BIN)
        .args([
            "demo",
            "--duration",
            "14s",
            "--kill-after",
            "3s",
            "--admin",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("killed demo-4"), "{stdout}");
    assert!(
        stdout.contains("every survivor declared demo-4 dead"),
        "{stdout}"
    );
    assert!(stdout.contains("/metrics"), "{stdout}");
}

#[test]
fn a_node_refuses_to_start_on_its_own_unusable_certificate_naming_the_file() {
    use swim_net::dev_certs::{DevCa, Usage};
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("test CA").unwrap();
    let day = Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    let cases = [
        (
            "expired",
            ca.issue_with_validity("b0", now - 30 * day, now - day)
                .unwrap(),
            "has expired",
        ),
        (
            "server-only",
            ca.issue_with_usages("b0", &[Usage::Server]).unwrap(),
            "does not allow clientAuth",
        ),
    ];
    for (label, cert, problem) in cases {
        let files =
            swim_net::dev_certs::write_files(&dir.path().join(label), &ca.cert_pem(), "b0", &cert)
                .unwrap();
        let flags = [
            "--name".to_string(),
            "b0".into(),
            "--bind".into(),
            format!("127.0.0.1:{}", free_udp()),
            "--admin".into(),
            format!("127.0.0.1:{}", free_tcp()),
            "--tls-ca".into(),
            files.ca.display().to_string(),
            "--tls-cert".into(),
            files.cert.display().to_string(),
            "--tls-key".into(),
            files.key.display().to_string(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (ok, stderr) = run_bad(dir.path(), &flags, None);
        assert!(!ok, "{label}: started");
        assert!(stderr.contains("tls.cert"), "{label}: {stderr}");
        assert!(
            stderr.contains(&*files.cert.to_string_lossy()),
            "{label}: the message names the file: {stderr}"
        );
        assert!(stderr.contains(problem), "{label}: {stderr}");
    }
}
