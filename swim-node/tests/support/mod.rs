//! Helpers for the tests that run the real `swim-node` binary as separate processes: its
//! certificates, spawning members, reading their admin endpoints. Each test binary uses part.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_swim-node");

pub fn swim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run swim-node")
}

pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Proc {
    pub name: String,
    pub child: Child,
    pub admin: String,
    pub udp: u16,
}

pub fn certs(dir: &Path, names: &[&str]) {
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

pub fn spawn(dir: &Path, name: &str, seed: Option<&str>) -> Proc {
    spawn_with(dir, name, seed, &Spawn::default())
}

/// What else a spawned member gets: more `SWIM_*` settings, a fixed QUIC port, another log
/// file (a second process with the same name and certificate).
#[derive(Default)]
pub struct Spawn<'a> {
    pub env: &'a [(&'a str, &'a str)],
    pub udp: Option<u16>,
    pub log: Option<&'a str>,
}

pub fn spawn_with(dir: &Path, name: &str, seed: Option<&str>, extra: &Spawn<'_>) -> Proc {
    let (udp, admin) = (extra.udp.unwrap_or_else(free_udp), free_tcp());
    let tls = dir.join(name);
    let log_name = extra.log.unwrap_or(name);
    let log = std::fs::File::create(dir.join(format!("{log_name}.log"))).unwrap();
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
        .envs(extra.env.iter().copied())
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

pub fn get(url: &str) -> Option<String> {
    let mut resp = ureq::get(url).call().ok()?;
    resp.body_mut().read_to_string().ok()
}

pub fn members(p: &Proc) -> Vec<serde_json::Value> {
    get(&format!("{}/members", p.admin))
        .and_then(|b| serde_json::from_str::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
}

pub fn state_of(p: &Proc, name: &str) -> Option<String> {
    members(p)
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["state"].as_str().unwrap().to_string())
}

pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
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

pub fn metric(p: &Proc, series: &str) -> Option<f64> {
    let text = get(&format!("{}/metrics", p.admin))?;
    parse_prometheus(&text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
}

pub fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

pub fn run_bad(dir: &Path, extra: &[&str], config: Option<&str>) -> (bool, String) {
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
