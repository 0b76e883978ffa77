//! The real `swim-node` binary as separate processes: certificates from `swim-node cert`,
//! three `run` processes, kill -9 and SIGTERM, bad configs, and the demo.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_swim-node");

fn swim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run swim-node")
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    name: String,
    child: Child,
    admin: String,
    udp: u16,
}

fn certs(dir: &Path, names: &[&str]) {
    let ca = dir.join("ca");
    let out = swim(&["cert", "ca", "--out", ca.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for n in names {
        let out = swim(&[
            "cert",
            "node",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            n,
            "--out",
            dir.join(n).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(n).join(format!("{n}.key")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "node key must be private");
        }
    }
}

fn spawn(dir: &Path, name: &str, seed: Option<&str>) -> Proc {
    let (udp, admin) = (free_udp(), free_tcp());
    let tls = dir.join(name);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--name", name])
        .args(["--bind", &format!("127.0.0.1:{udp}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .arg("--tls-ca")
        .arg(tls.join("ca.pem"))
        .arg("--tls-cert")
        .arg(tls.join(format!("{name}.pem")))
        .arg("--tls-key")
        .arg(tls.join(format!("{name}.key")))
        .env("SWIM_PROBE_INTERVAL", "300ms")
        .env("SWIM_PROBE_TIMEOUT", "100ms")
        .env("SWIM_GOSSIP_INTERVAL", "100ms")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(seed) = seed {
        cmd.args(["--seeds", seed]);
    }
    Proc {
        name: name.into(),
        child: cmd.spawn().unwrap(),
        admin: format!("http://127.0.0.1:{admin}"),
        udp,
    }
}

fn get(url: &str) -> Option<String> {
    let mut resp = ureq::get(url).call().ok()?;
    resp.body_mut().read_to_string().ok()
}

fn members(p: &Proc) -> Vec<serde_json::Value> {
    get(&format!("{}/members", p.admin))
        .and_then(|b| serde_json::from_str::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
}

fn state_of(p: &Proc, name: &str) -> Option<String> {
    members(p)
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["state"].as_str().unwrap().to_string())
}

fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Checks Prometheus text exposition line by line; returns the samples as (series, value).
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment line {line:?}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push((series.to_string(), value));
    }
    samples
}

fn metric(p: &Proc, series: &str) -> Option<f64> {
    let text = get(&format!("{}/metrics", p.admin))?;
    parse_prometheus(&text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

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
    // The detection histogram appears with its first sample: none yet.
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

fn run_bad(dir: &Path, extra: &[&str], config: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("run");
    if let Some(text) = config {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    let out = cmd.args(extra).env_remove("RUST_LOG").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
