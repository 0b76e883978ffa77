//! Connection economics over real QUIC + mTLS, counted at the socket and the packet keys:
//! steady state (a change of metadata included) re-establishes nothing and sends no
//! keep-alive; a reconnect resumes the TLS
//! session; where resumption is refused, certificates are presented and verified again; a
//! crashed member costs no failed dials while it is suspect, nor gossip's dials once dead.

use std::time::Duration;

use swim_net::MemberState;
use swim_net::{Cluster, ClusterConfig, Event, MessageKind, WireCause, WireStats};
use swim_tests::{
    alive_count, eventually, fast_config, start_at, start_cluster_with, state_of, Pki,
};

/// Sum of one wire figure over the members.
fn total(nodes: &[Cluster], f: impl Fn(&WireStats) -> u64) -> u64 {
    nodes.iter().map(|n| f(&n.wire_stats())).sum()
}

fn handshakes(nodes: &[Cluster]) -> (u64, u64) {
    (
        total(nodes, |w| w.handshakes_full),
        total(nodes, |w| w.handshakes_resumed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_keeps_every_connection_and_sends_no_keep_alive() {
    let pki = Pki::new();
    // The idle timeout is derived: max(6·(N − 1), 120) probe intervals = 18 s here.
    let nodes = start_cluster_with(&pki, 4, Duration::from_secs(20), |c| {
        c.swim.probe_interval = Duration::from_millis(150);
        c.swim.probe_timeout = Duration::from_millis(75);
        c.idle_timeout = None;
    })
    .await;
    // Every pair meets within a few probe rounds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = handshakes(&nodes);
    let pings = |n: &[Cluster]| total(n, |w| w.sent_packets_for(WireCause::KeepAlive));
    let probes = |n: &[Cluster]| total(n, |w| w.sent_packets_for(WireCause::MtuProbe));
    let (pings_before, probes_before) = (pings(&nodes), probes(&nodes));
    let swim_before = total(&nodes, |w| {
        w.sent_packets_for(WireCause::Datagram(MessageKind::Ping))
    });
    // A change of metadata is not a new process: no connection to it closes.
    nodes[1]
        .set_metadata(b"ready".to_vec())
        .await
        .expect("metadata");
    // Three idle timeouts.
    tokio::time::sleep(Duration::from_secs(3 * 18)).await;
    assert!(
        nodes
            .iter()
            .all(|n| n.members().iter().any(
                |m| &*m.name == "node-1" && m.metadata.as_deref() == Some(b"ready".as_slice())
            )),
        "the metadata spread"
    );
    assert_eq!(
        handshakes(&nodes),
        before,
        "a connection was re-established in steady state (full, resumed)"
    );
    assert_eq!(pings(&nodes), pings_before, "keep-alive packets were sent");
    assert_eq!(probes(&nodes), probes_before, "path-MTU probes were sent");
    let swim_pings = total(&nodes, |w| {
        w.sent_packets_for(WireCause::Datagram(MessageKind::Ping))
    }) - swim_before;
    assert!(
        swim_pings >= 100,
        "SWIM traffic went on: {swim_pings} pings"
    );
    assert!(nodes.iter().all(|n| alive_count(n) == 4));
    for n in &nodes {
        let w = n.wire_stats();
        assert_eq!(w.unattributed_bytes(), 0, "every byte has a cause");
        assert_eq!(w.datagrams_delayed + w.datagrams_dropped, 0);
    }
    for n in nodes {
        n.shutdown().await;
    }

    // The same counts do see keep-alives and idle churn when they happen (so the zeros above
    // mean something): a 20 ms keep-alive, and an idle timeout of two probe intervals.
    let nodes = start_cluster_with(&pki, 3, Duration::from_secs(20), |c| {
        c.swim.probe_interval = Duration::from_millis(150);
        c.swim.probe_timeout = Duration::from_millis(75);
        c.quic.keep_alive_interval = Some(Duration::from_millis(20));
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pings(&nodes) > 0, "keep-alives went uncounted");
    for n in nodes {
        n.shutdown().await;
    }
    let nodes = start_cluster_with(&pki, 6, Duration::from_secs(20), |c| {
        c.swim.probe_interval = Duration::from_millis(150);
        c.swim.probe_timeout = Duration::from_millis(75);
        c.idle_timeout = Some(Duration::from_millis(300));
    })
    .await;
    let before = handshakes(&nodes);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = handshakes(&nodes);
    assert!(
        after.0 + after.1 > before.0 + before.1,
        "connections idling out went uncounted"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_after_eviction_resumes_and_a_refused_resumption_verifies_certificates() {
    let pki = Pki::new();
    // Two cached connections for five members: probing evicts and reconnects all the time.
    let nodes = start_cluster_with(&pki, 5, Duration::from_secs(20), |c| {
        c.max_connections = 2;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (full_before, resumed_before) = handshakes(&nodes);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (full, resumed) = handshakes(&nodes);
    assert!(
        resumed >= resumed_before + 20,
        "reconnects did not resume: {resumed_before} → {resumed} resumed"
    );
    // Each side keeps one ticket per peer; a full handshake happens only when two dials to
    // the same peer race for it.
    assert!(
        full - full_before <= (resumed - resumed_before) / 10,
        "{} full handshakes beside {} resumed",
        full - full_before,
        resumed - resumed_before
    );
    assert!(
        nodes.iter().all(|n| alive_count(n) == 5),
        "resumed peers keep their identity"
    );

    // node-4 restarts as a new process: its session caches are gone, so every peer offering
    // an old ticket is refused resumption and must verify node-4's certificate anew.
    let mut nodes = nodes;
    drop(nodes.pop());
    let (full_before, _) = handshakes(&nodes);
    let seed = nodes[0].advertise_addr();
    let restarted = Cluster::start(fast_config("node-4", pki.node("node-4")))
        .await
        .unwrap();
    restarted.join(&[seed]).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            nodes
                .iter()
                .all(|n| state_of(n, "node-4").is_some_and(|s| s.0 == MemberState::Alive))
                && alive_count(&restarted) == 5
        })
        .await,
        "the restarted member is back"
    );
    assert!(
        restarted.wire_stats().handshakes_full >= 1,
        "the new process verified its peers' certificates"
    );
    let (full_after, _) = handshakes(&nodes);
    assert!(
        full_after > full_before,
        "peers holding tickets for the old process verified the new one's certificate"
    );

    // A process at the same address with the right name but a certificate from another CA:
    // peers probing node-4 there offer their tickets, cannot resume, verify the certificate
    // and refuse it — it never counts as node-4.
    let addr = restarted.local_addr();
    let failed = |nodes: &[Cluster]| total(nodes, |w| w.sent_bytes_for(WireCause::HandshakeFailed));
    let failed_before = failed(&nodes);
    restarted.shutdown().await;
    let stranger_ca = swim_net::dev_certs::DevCa::new("another CA").unwrap();
    let forged = stranger_ca.issue("node-4").unwrap();
    let config = fast_config(
        "node-4",
        pki.node_with("node-4", &stranger_ca.cert_pem(), &forged),
    );
    let impostor = start_at(config, addr).await;
    let impostor_boot = state_of(&impostor, "node-4").expect("itself").2;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        for n in &nodes {
            assert!(
                state_of(n, "node-4").is_none_or(
                    |(state, _, boot)| boot != impostor_boot || state != MemberState::Alive
                ),
                "{} took the impostor for node-4",
                n.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed(&nodes) > failed_before,
        "no peer attempted (and failed) a handshake with the impostor"
    );
    assert!(!impostor.is_joined());
    impostor.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_is_probed_over_its_connection_and_gossip_never_dials_it() {
    let pki = Pki::new();
    let nodes = start_cluster_with(&pki, 5, Duration::from_secs(20), |c| {
        // Reconnect push-pulls, the one kind that may dial a dead member, an hour apart.
        c.swim.reconnect_interval = Duration::from_secs(3600);
    })
    .await;
    // Every pair meets within a few probe rounds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut nodes = nodes;
    let victim = nodes.pop().expect("five members");
    // Bytes of handshakes that did not (or not yet) complete: a dial counts here from its
    // first Initial.
    let dials = |n: &[Cluster]| {
        total(n, |w| {
            w.sent_bytes_for(WireCause::HandshakeFailed) + w.handshake_pending_bytes
        })
    };
    let dials_before = dials(&nodes);
    let reconnects = |n: &[Cluster]| n.iter().map(|n| n.stats().reconnects).sum::<u64>();
    let reconnects_before = reconnects(&nodes);
    // As `kill -9`: no CONNECTION_CLOSE, the survivors find out by probing.
    victim.crash();
    let dead_everywhere = |n: &[Cluster]| {
        n.iter()
            .all(|n| state_of(n, "node-4").is_some_and(|s| s.0 == MemberState::Dead))
    };
    assert!(
        eventually(Duration::from_secs(20), || dead_everywhere(&nodes)).await,
        "the crash was detected by every survivor"
    );
    // While it was suspect its connection stayed open: probes and helpers' pings went as
    // datagrams, not as dials.
    assert_eq!(
        dials(&nodes),
        dials_before,
        "survivors dialled the crashed member while it was suspect"
    );
    // Dead, its connection is closed; gossip rounds still pick it (`gossip_to_dead_time`),
    // but only on an open connection, so nothing dials it. Broadcasts keep the rounds busy:
    // each sends to 3 of the 4 candidates, the dead one among them.
    let gossip = |n: &[Cluster]| {
        total(n, |w| {
            w.sent_packets_for(WireCause::Datagram(MessageKind::Gossip))
        })
    };
    let gossip_before = gossip(&nodes);
    for round in 0..30u8 {
        nodes[usize::from(round) % 4]
            .broadcast(vec![round; 16])
            .await
            .expect("broadcast");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gossip(&nodes) >= gossip_before + 30,
        "gossip rounds went on"
    );
    // A reconnect push-pull may dial it: its first tick is at a random point of the hour,
    // so one may fall in this window (at most a padded Initial a second for the 3 s dial,
    // and the close).
    let reconnected = reconnects(&nodes) - reconnects_before;
    assert!(
        dials(&nodes) - dials_before <= reconnected * 5 * 1_300,
        "survivors dialled the dead member: {} bytes of handshakes that did not complete, \
         {reconnected} reconnect push-pulls",
        dials(&nodes) - dials_before
    );
    assert!(nodes.iter().all(|n| alive_count(n) == 4));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_at_its_address_while_suspect_is_dialled_afresh() {
    let pki = Pki::new();
    // A long suspicion (at least 20 · 0.3 s): the new process comes back while its
    // predecessor is still suspect, so it is never declared dead and no connection to it
    // closes on death.
    let long_suspicion = |c: &mut ClusterConfig| c.swim.suspicion_mult = 20;
    let mut nodes = start_cluster_with(&pki, 5, Duration::from_secs(20), long_suspicion).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = nodes.pop().expect("five members");
    let addr = victim.local_addr();
    victim.crash();
    let suspect_somewhere = |n: &[Cluster]| {
        n.iter()
            .any(|n| state_of(n, "node-4").is_some_and(|s| s.0 == MemberState::Suspect))
    };
    assert!(
        eventually(Duration::from_secs(10), || suspect_somewhere(&nodes)).await,
        "the crashed member was suspected"
    );
    // The new process speaks to its seed only (its own probes and gossip rounds are a
    // minute apart): the others must reach it themselves, and their connections lead to
    // the old process, which the new one's stateless resets cannot close.
    let mut config = fast_config("node-4", pki.node("node-4"));
    long_suspicion(&mut config);
    // (Its first gossip round with something to say comes a gossip interval after it
    // starts; its first probe at a random point of the first probe interval.)
    config.swim.probe_interval = Duration::from_secs(60);
    config.swim.probe_timeout = Duration::from_secs(5);
    config.swim.gossip_interval = Duration::from_secs(60);
    config.swim.push_pull_interval = Duration::from_secs(120);
    config.swim.reconnect_interval = Duration::from_secs(600);
    config.idle_timeout = Some(Duration::from_secs(300));
    let mut events: Vec<_> = nodes.iter().map(Cluster::events).collect();
    let full_before = handshakes(&nodes).0;
    let restarted = start_at(config, addr).await;
    restarted.join(&[nodes[0].advertise_addr()]).unwrap();
    let boot = state_of(&restarted, "node-4").expect("itself").2;
    let back = |n: &[Cluster]| {
        n.iter().all(|n| {
            state_of(n, "node-4").is_some_and(|s| s.0 == MemberState::Alive && s.2 == boot)
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || back(&nodes)).await,
        "every survivor took the new process for node-4"
    );
    // Each survivor closed the silent connection when it learned of the new process, and
    // its next probe dialled: every survivor verified the new process's certificate (the
    // seed when it joined; were the new process's first probe to come this early, it would
    // add one).
    let full = || handshakes(&nodes).0 - full_before;
    assert!(
        eventually(Duration::from_secs(8), || full() >= 4).await,
        "survivors kept probing the old process's connection: {} full handshakes",
        full()
    );
    for rx in &mut events {
        while let Ok(event) = rx.try_recv() {
            match &event {
                Event::MemberSuspect { member, .. } if member.name.as_ref() == "node-4" => {
                    assert_ne!(member.boot_id, boot, "the new process was suspected");
                }
                // Declared dead, the predecessor's connection would have closed on its
                // death: the test would not have exercised a restart during suspicion.
                Event::MemberDown { member, .. } if member.name.as_ref() == "node-4" => {
                    panic!("node-4 was declared dead: {event:?}");
                }
                _ => {}
            }
        }
    }
    restarted.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}
