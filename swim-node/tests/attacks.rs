//! What one authenticated peer can make a real `swim-node run` process hold: a slowloris
//! (many streams, one byte each at a time) and oversize stream messages stay within the
//! memory budgets (`max_held_per_peer`, 32 MiB by default), are refused and counted, and no
//! healthy member is suspected. The member runs in its own process, so its RSS is its own.

use std::time::{Duration, Instant};

mod support;

use support::*;

/// The resident set of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

fn metric_sum(p: &Proc, name: &str) -> f64 {
    let text = get(&format!("{}/metrics", p.admin)).unwrap_or_default();
    parse_prometheus(&text)
        .into_iter()
        .filter(|(s, _)| s == name || s.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_and_oversize_streams_are_refused_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    certs(dir, &["n0", "n1", "n2", "mallory"]);
    let mut p0 = spawn(dir, "n0", None);
    let seed = format!("127.0.0.1:{}", p0.udp);
    let mut p1 = spawn(dir, "n1", Some(&seed));
    let mut p2 = spawn(dir, "n2", Some(&seed));
    let all_alive = |p: &Proc| members(p).iter().filter(|m| m["state"] == "alive").count() == 3;
    assert!(
        eventually(Duration::from_secs(30), || [&p0, &p1, &p2]
            .iter()
            .all(|p| all_alive(p))),
        "the cluster did not form"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The baseline of a member in service: scraped, as Prometheus would.
    for _ in 0..3 {
        let _ = metric_sum(&p0, "swim_streams_refused_total");
        let _ = members(&p0);
    }
    let pid = p0.child.id();

    // mallory holds a certificate of the cluster CA but never joins.
    let ca = std::fs::read_to_string(dir.join("mallory").join("ca.pem")).unwrap();
    let cert = swim_net::dev_certs::CertAndKey {
        cert_pem: std::fs::read_to_string(dir.join("mallory").join("mallory.pem")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("mallory").join("mallory.key")).unwrap(),
    };
    let addr = format!("127.0.0.1:{}", p0.udp).parse().unwrap();
    // A first, short attack, so that the baseline is that of a member in service that has met
    // such a peer before: malloc keeps some of what it freed for reuse. (Measured without it,
    // 2026-12-04: +0.4 MiB at the peak, +2.1 MiB just after the attacker's connection closed,
    // +0.9 MiB, 9 %, eleven seconds later, on a 9.8 MiB baseline.)
    attack(&ca, &cert, addr, Duration::from_secs(5), || {}).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = rss_of(pid);
    let mut peak = baseline;
    attack(&ca, &cert, addr, Duration::from_secs(60), || {
        peak = peak.max(rss_of(pid));
    })
    .await;
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "n0 RSS baseline {} KiB, peak {} KiB (+{} KiB)",
        baseline >> 10,
        peak >> 10,
        grew >> 10
    );
    assert!(grew <= 64 << 20, "the member held {} MiB more", grew >> 20);

    let refused = |reason: &str| {
        metric(
            &p0,
            &format!("swim_streams_refused_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(refused("timeout") > 0.0, "no trickling stream was stopped");
    assert!(
        refused("too_large") > 0.0,
        "no oversize message was refused"
    );
    assert!(
        refused("bad_length") > 0.0,
        "no message longer than announced was refused"
    );
    // RSS every 100 ms from the end of the attack, for the message if it does not settle.
    let mut trail = vec![rss_of(pid) >> 10];
    let settled = eventually(Duration::from_secs(10), || {
        let now = rss_of(pid);
        trail.push(now >> 10);
        now <= baseline + baseline / 10
    });
    eprintln!("n0 RSS after the attack, KiB every 100 ms: {trail:?}");
    assert!(
        settled,
        "n0's RSS {} KiB did not return to within 10 % of {} KiB: {trail:?}",
        rss_of(pid) >> 10,
        baseline >> 10
    );
    for p in [&p0, &p1, &p2] {
        let started = metric(p, "swim_suspicions_total{outcome=\"started\"}").unwrap_or(0.0);
        assert_eq!(started, 0.0, "{} suspected a healthy member", p.name);
        assert!(all_alive(p), "{}: {:?}", p.name, members(p));
    }
    for p in [&mut p0, &mut p1, &mut p2] {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

/// One authenticated peer's attack on the member at `addr`, for `length`: 256 trickling
/// streams and oversize messages; `sample` runs every 200 ms meanwhile.
async fn attack(
    ca: &str,
    cert: &swim_net::dev_certs::CertAndKey,
    addr: std::net::SocketAddr,
    length: Duration,
    mut sample: impl FnMut(),
) {
    let client = swim_tests::raw_client(ca, Some(cert));
    let conn = client.connect(addr, "n0").unwrap().await.unwrap();
    let until = Instant::now() + length;
    let mut tasks = Vec::new();
    // 256 trickling streams, each announcing a 1 MB message and sending one byte per
    // millisecond, a new stream whenever the member stops one (it lets 16 be open at once).
    for _ in 0..256 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(mut s) = conn.open_uni().await else {
                    return;
                };
                if s.write_all(&1_000_000u32.to_le_bytes()).await.is_err() {
                    continue;
                }
                while Instant::now() < until {
                    if s.write_all(&[0x05]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    // And every few seconds a message larger than max_stream_size (16 MiB), announced as
    // such, or announced small and sent large.
    for announced in [20u32 << 20, 1 << 20] {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let chunk = vec![0u8; 1 << 20];
            while Instant::now() < until {
                let Ok(mut s) = conn.open_uni().await else {
                    return;
                };
                if s.write_all(&announced.to_le_bytes()).await.is_err() {
                    continue;
                }
                for _ in 0..20 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = s.finish();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    while Instant::now() < until {
        sample();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in tasks {
        t.abort();
    }
    conn.close(0u32.into(), b"done");
}
