//! swim-net over real QUIC + mutual TLS on loopback: joining, crash detection, graceful
//! leave, restart, refused peers and garbage input.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use swim_net::dev_certs::DevCa;
use swim_net::{Cluster, MemberState};
use swim_tests::*;
use tokio::sync::Mutex;

/// One cluster at a time: the machine has two cores, and timing bounds are the point.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Handshakes refused so far for `reason`, over every member of this test binary.
fn refusals(reason: &str) -> f64 {
    Metrics::get().total("swim_tls_handshake_failures_total", &[("reason", reason)])
}

/// Whether a refusal for `reason` is counted beyond `before` within `within`.
async fn refusal_counted(reason: &str, before: f64, within: Duration) -> bool {
    eventually(within, || refusals(reason) > before).await
}

fn all_see(nodes: &[&Cluster], name: &str, want: impl Fn(MemberState) -> bool) -> bool {
    nodes
        .iter()
        .all(|n| state_of(n, name).is_some_and(|(s, _, _)| want(s)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_members_join_through_one_seed_then_detect_a_killed_one() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::get();
    let pki = Pki::new();
    let timed_before = metrics.total("swim_push_pull_duration_seconds", &[]);
    let mut nodes = start_cluster(&pki, 16, Duration::from_secs(30)).await;
    // Each of the 15 joiners timed its join push-pull, answered by node-0.
    let timed = metrics.total("swim_push_pull_duration_seconds", &[]) - timed_before;
    assert!(timed >= 15.0, "{timed} push-pulls timed");

    let deaths_before = metrics.total("swim_detection_latency_seconds", &[]);
    let started_before = metrics.total("swim_suspicions_total", &[("outcome", "started")]);
    let bound = nodes[0].members().len();
    let bound = {
        let c = fast_config("x", pki.node("x")).swim;
        c.timings(bound).detection_bound()
    };
    let victim = nodes.remove(7);
    // Each survivor's death event for node-7: when it came and the latency it recorded (the
    // `swim_detection_latency_seconds` sample).
    let recorded: Vec<_> = nodes
        .iter()
        .map(|n| {
            let mut events = n.events();
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(swim_net::Event::MemberDown {
                            member,
                            since_last_alive,
                            ..
                        }) if &*member.name == "node-7" => {
                            return Some((std::time::Instant::now(), since_last_alive));
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect();
    drop(victim); // abrupt: endpoint and task dropped, no leave
    let killed_at = std::time::Instant::now();
    let survivors: Vec<&Cluster> = nodes.iter().collect();
    assert!(
        eventually(bound, || all_see(&survivors, "node-7", |s| s
            == MemberState::Dead))
        .await,
        "not every survivor marked node-7 dead within {bound:?}: {:?}",
        survivors
            .iter()
            .map(|n| state_of(n, "node-7"))
            .collect::<Vec<_>>()
    );
    let detected_in = killed_at.elapsed();
    // Every survivor recorded the crash within one probe interval of the true latency.
    let interval = fast_config("x", pki.node("x")).swim.probe_interval;
    let mut off = Vec::new();
    for (i, task) in recorded.into_iter().enumerate() {
        let (at, since_last_alive) = tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("a death event for node-7")
            .unwrap()
            .expect("events open");
        let truth = at - killed_at;
        let error = since_last_alive.as_secs_f64() - truth.as_secs_f64();
        off.push(format!("{}: {error:+.3}", nodes[i].name()));
        assert!(
            error.abs() <= interval.as_secs_f64(),
            "{}: recorded {since_last_alive:?} for a true {truth:?}, more than one probe interval ({interval:?}) apart",
            nodes[i].name()
        );
    }
    eprintln!("recorded minus true latency, s: {}", off.join(", "));
    // One observation per survivor, and no other: nobody else died.
    assert!(
        eventually(Duration::from_secs(3), || {
            metrics.total("swim_detection_latency_seconds", &[]) >= deaths_before + 15.0
        })
        .await
    );
    assert_eq!(
        metrics.total("swim_detection_latency_seconds", &[]) - deaths_before,
        15.0,
        "one detection-latency observation per survivor"
    );
    assert!(
        eventually(Duration::from_secs(3), || {
            metrics.total("swim_suspicions_total", &[("outcome", "started")]) > started_before
        })
        .await,
        "the suspicion counter did not move"
    );
    // Everyone else stayed alive in everyone's view.
    for n in &nodes {
        assert_eq!(alive_count(n), 15, "{} sees {:?}", n.name(), n.members());
    }
    eprintln!("detected in {detected_in:?} (bound {bound:?})");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_seen_as_left_not_as_a_failure() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new();
    let mut nodes = start_cluster(&pki, 6, Duration::from_secs(20)).await;
    let mut events: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, n)| n.events())
        .collect();
    let leaver = nodes.remove(3);
    leaver.leave(Duration::from_secs(5)).await.unwrap();
    leaver.shutdown().await;
    let rest: Vec<&Cluster> = nodes.iter().collect();
    assert!(
        eventually(Duration::from_secs(10), || all_see(&rest, "node-3", |s| s
            == MemberState::Left))
        .await
    );
    // Stays left: a stopped leaver is not later declared dead.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(all_see(&rest, "node-3", |s| s == MemberState::Left));
    for rx in &mut events {
        while let Ok(e) = rx.try_recv() {
            if let swim_net::Event::MemberDown { member, .. } = e {
                assert_ne!(&*member.name, "node-3", "a leave was reported as a failure");
            }
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_restarted_with_its_name_is_alive_again_with_a_higher_incarnation() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new();
    let mut nodes = start_cluster(&pki, 6, Duration::from_secs(20)).await;
    let (_, old_incarnation, old_boot) = state_of(&nodes[0], "node-4").unwrap();
    drop(nodes.remove(4));
    let rest: Vec<&Cluster> = nodes.iter().collect();
    assert!(
        eventually(Duration::from_secs(30), || all_see(&rest, "node-4", |s| s
            == MemberState::Dead))
        .await
    );

    let restarted = Cluster::start(fast_config("node-4", pki.node("node-4")))
        .await
        .unwrap();
    restarted.join(&[nodes[0].advertise_addr()]).unwrap();
    let all: Vec<&Cluster> = nodes.iter().chain(std::iter::once(&restarted)).collect();
    let back = eventually(Duration::from_secs(20), || {
        all.iter().all(|n| {
            state_of(n, "node-4").is_some_and(|(s, inc, boot)| {
                s == MemberState::Alive && inc > old_incarnation && boot != old_boot
            })
        })
    })
    .await;
    assert!(
        back,
        "{:?}\n{}",
        all.iter()
            .map(|n| state_of(n, "node-4"))
            .collect::<Vec<_>>(),
        all.iter()
            .map(|n| {
                let s = n.stats();
                let refused: Vec<u64> = swim_core::ClaimRefusal::ALL
                    .iter()
                    .map(|r| s.claims_refused(*r))
                    .collect();
                format!(
                    "{}: push_pulls {} digests {} mismatches {} records_asked {} refused {:?} recv records {:?} pp {:?}",
                    n.name(),
                    s.push_pulls,
                    s.digests_sent,
                    s.digest_mismatches,
                    s.records_asked,
                    refused,
                    s.received(swim_core::MessageKind::Records),
                    s.received(swim_core::MessageKind::PushPull),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        eventually(Duration::from_secs(10), || all
            .iter()
            .all(|n| alive_count(n) == 6))
        .await
    );
    restarted.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_valid_certificate_are_refused_and_counted() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new();
    let mut nodes = start_cluster(&pki, 4, Duration::from_secs(20)).await;
    let target = nodes[1].advertise_addr();
    let names = |nodes: &[Cluster]| -> Vec<Vec<String>> {
        nodes
            .iter()
            .map(|n| n.members().iter().map(|m| m.name.to_string()).collect())
            .collect()
    };
    let view_before = names(&nodes);

    // 1. No client certificate.
    let before = refusals("no_certificate");
    let client = raw_client(&pki.ca.cert_pem(), None);
    if let Ok(conn) = client.connect(target, "node-1").unwrap().await {
        let _ = conn.send_datagram(Bytes::from_static(b"\x01hello"));
    }
    assert!(
        refusal_counted("no_certificate", before, Duration::from_secs(5)).await,
        "no-certificate refusal not counted"
    );

    // 2. A certificate from another CA. The rogue trusts our CA as well, so the refusal
    //    counted here can only be the cluster member's refusal of the rogue's certificate.
    let before = refusals("unknown_issuer");
    let other_ca = DevCa::new("another cluster").unwrap();
    let rogue_cert = other_ca.issue("rogue").unwrap();
    let both = format!("{}{}", pki.ca.cert_pem(), other_ca.cert_pem());
    let rogue_files = pki.node_with("rogue", &both, &rogue_cert);
    let rogue = Cluster::start(fast_config("rogue", rogue_files))
        .await
        .unwrap();
    rogue.join(&[target]).unwrap();
    assert!(refusal_counted("unknown_issuer", before, Duration::from_secs(5)).await);
    assert!(!rogue.is_joined());

    // 3. An expired certificate from the right CA (a member refuses to start on one, so a
    //    bare QUIC client presents it).
    let before = refusals("expired");
    let day = Duration::from_secs(86_400);
    let expired = pki
        .ca
        .issue_with_validity(
            "stale",
            SystemTime::now() - 30 * day,
            SystemTime::now() - day,
        )
        .unwrap();
    let stale = raw_client(&pki.ca.cert_pem(), Some(&expired));
    if let Ok(conn) = stale.connect(target, "node-1").unwrap().await {
        let _ = conn.send_datagram(Bytes::from_static(b"\x01hello"));
    }
    assert!(refusal_counted("expired", before, Duration::from_secs(5)).await);

    // 4. A certificate whose name is not the one expected at that address: node-3 dies and
    //    "mallory" (valid CA, other name) takes its address; probes for node-3 must not be
    //    answered by mallory.
    let before = refusals("name_mismatch");
    let node3 = nodes.remove(3);
    let addr3 = node3.advertise_addr();
    drop(node3);
    let mallory = start_at(fast_config("mallory", pki.node("mallory")), addr3).await;
    assert!(refusal_counted("name_mismatch", before, Duration::from_secs(10)).await);
    let rest: Vec<&Cluster> = nodes.iter().collect();
    assert!(
        eventually(Duration::from_secs(30), || all_see(&rest, "node-3", |s| s
            == MemberState::Dead))
        .await
    );

    // The cluster's view: nobody new, nobody else changed.
    for (i, n) in nodes.iter().enumerate() {
        let view: Vec<String> = n.members().iter().map(|m| m.name.to_string()).collect();
        assert_eq!(view, view_before[i], "{}'s view changed", n.name());
        assert_eq!(alive_count(n), 3);
    }
    for c in [rogue, mallory] {
        c.shutdown().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_an_authenticated_peer_is_counted_and_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::get();
    let pki = Pki::new();
    let nodes = start_cluster(&pki, 3, Duration::from_secs(20)).await;
    let before = metrics.total("swim_input_errors_total", &[]);
    let view_before = nodes[0].members();

    let garbage = pki.ca.issue("garbage").unwrap();
    let client = raw_client(&pki.ca.cert_pem(), Some(&garbage));
    let conn = client
        .connect(nodes[0].advertise_addr(), "node-0")
        .unwrap()
        .await
        .unwrap();
    let mut sent = 0;
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..(i as usize * 7 % 300 + 1))
            .map(|j| (j as u8).wrapping_mul(i).wrapping_add(1))
            .collect();
        if conn.send_datagram(Bytes::from(junk)).is_ok() {
            sent += 1;
        }
    }
    for i in 0..5u8 {
        let mut s = conn.open_uni().await.unwrap();
        s.write_all(&[1, 0xff, i, 0xff, 0xff, 0xff, 0x7f])
            .await
            .unwrap();
        s.finish().unwrap();
    }
    assert!(sent > 0);
    assert!(
        eventually(Duration::from_secs(5), || metrics
            .total("swim_input_errors_total", &[])
            >= before + 5.0)
        .await,
        "garbage not counted"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let view_after = nodes[0].members();
    let summary = |v: &[swim_net::MemberInfo]| -> Vec<(String, MemberState, u32)> {
        v.iter()
            .map(|m| (m.name.to_string(), m.state, m.incarnation))
            .collect()
    };
    assert_eq!(summary(&view_before), summary(&view_after));
    assert!(
        nodes.iter().all(|n| alive_count(n) == 3),
        "the node keeps running"
    );
    conn.close(0u32.into(), b"");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_from_disk_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let pki = Pki::new();
    let files = pki.node("node-0");
    let mut config = fast_config("node-0", files.clone());
    config.reload_interval = Duration::from_millis(200);
    let node0 = Cluster::start(config).await.unwrap();
    node0.join(&[]).unwrap();

    // A member of a new CA is refused while node-0 trusts only the old one...
    let new_ca = DevCa::new("rotated CA").unwrap();
    let bundle = format!("{}{}", pki.ca.cert_pem(), new_ca.cert_pem());
    let newcomer_cert = new_ca.issue("newcomer").unwrap();
    let newcomer = Cluster::start(fast_config(
        "newcomer",
        pki.node_with("newcomer", &bundle, &newcomer_cert),
    ))
    .await
    .unwrap();
    newcomer.join(&[node0.advertise_addr()]).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !newcomer.is_joined(),
        "node-0 must not trust the new CA yet"
    );

    // ...and accepted once node-0's files are rotated in place: the new CA bundle and a
    // certificate from the new CA.
    let rotated = new_ca.issue("node-0").unwrap();
    std::fs::write(&files.ca, &bundle).unwrap();
    std::fs::write(&files.cert, &rotated.cert_pem).unwrap();
    swim_net::dev_certs::write_secret(&files.key, &rotated.key_pem).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || newcomer.is_joined()).await,
        "the newcomer was not accepted after rotation"
    );
    assert!(eventually(Duration::from_secs(10), || alive_count(&node0) == 2).await);
    newcomer.shutdown().await;
    node0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closing_and_reopening_cause_no_suspicion() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::get();
    let pki = Pki::new();
    let nodes = start_cluster_with(&pki, 5, Duration::from_secs(20), |c| {
        // Shorter than the time between two messages of most pairs: connections keep
        // timing out and every probe may need a fresh handshake first.
        c.idle_timeout = Some(Duration::from_millis(700));
    })
    .await;
    let mut events: Vec<_> = nodes.iter().map(|n| n.events()).collect();
    let opened_before = metrics.total("swim_connections_opened_total", &[]);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let opened = metrics.total("swim_connections_opened_total", &[]) - opened_before;
    assert!(
        opened >= 10.0,
        "connections were not churning ({opened} opened)"
    );
    for (i, rx) in events.iter_mut().enumerate() {
        while let Ok(e) = rx.try_recv() {
            assert!(
                !matches!(
                    e,
                    swim_net::Event::MemberSuspect { .. } | swim_net::Event::MemberDown { .. }
                ),
                "node-{i} saw {e:?} while connections churned ({opened} opened)"
            );
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_across_cluster_names_is_refused_and_counted_on_both_sides() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::get();
    let pki = Pki::new();
    let mismatches = |by| metrics.total("swim_cluster_mismatches_total", &[("by", by)]);
    // What the joiner would count if it took the close for a refused handshake.
    let refusals = || {
        metrics.total("swim_refused_by_peer_total", &[])
            + metrics.total("swim_connect_failures_total", &[])
    };
    let (us_before, peer_before, refusals_before) =
        (mismatches("us"), mismatches("peer"), refusals());

    // One CA, two cluster names.
    let mut blue = fast_config("blue-0", pki.node("blue-0"));
    blue.swim.cluster_name = "blue".into();
    let seed = Cluster::start(blue).await.unwrap();
    seed.join(&[]).unwrap();
    let mut green = fast_config("green-0", pki.node("green-0"));
    green.swim.cluster_name = "green".into();
    let joiner = Cluster::start(green).await.unwrap();
    joiner.join(&[seed.advertise_addr()]).unwrap();

    assert!(
        eventually(Duration::from_secs(10), || mismatches("us") > us_before
            && mismatches("peer") > peer_before)
        .await,
        "the seed refused {} push-pulls, the joiner heard of {}",
        mismatches("us") - us_before,
        mismatches("peer") - peer_before
    );
    assert_eq!(
        refusals(),
        refusals_before,
        "the joiner took the seed's close for a refused handshake"
    );
    // Join retries are refused too; the two clusters never merge.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!joiner.is_joined());
    assert!(state_of(&seed, "green-0").is_none(), "{:?}", seed.members());
    assert!(
        state_of(&joiner, "blue-0").is_none(),
        "{:?}",
        joiner.members()
    );
    joiner.shutdown().await;
    seed.shutdown().await;
}
