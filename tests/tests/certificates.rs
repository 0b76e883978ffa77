//! Certificate usage, checked both ways and at start-up, over real QUIC + mutual TLS: a
//! member refuses to start on a certificate it could not be a member with; a peer must allow
//! serverAuth and clientAuth whichever side dialled; refusals are counted on both sides.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use swim_net::dev_certs::{DevCa, Usage};
use swim_net::{Cluster, MemberState, NetError, TlsFile, TlsFileProblem};
use swim_tests::*;

/// Handshakes refused so far for `reason`, over every member of this test binary.
fn refusals(reason: &str) -> f64 {
    Metrics::get().total("swim_tls_handshake_failures_total", &[("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_refuses_to_start_on_a_certificate_it_could_not_be_a_member_with() {
    let pki = Pki::new();
    let ca = pki.ca.cert_pem();
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let other_ca = DevCa::new("another CA").unwrap();
    let leaf = pki.ca.issue("leaf").unwrap();
    type Case = (
        &'static str,
        String,
        swim_net::dev_certs::CertAndKey,
        TlsFile,
    );
    let cases: Vec<Case> = vec![
        (
            "expired",
            ca.clone(),
            pki.ca
                .issue_with_validity("n", now - 30 * day, now - day)
                .unwrap(),
            TlsFile::Cert,
        ),
        (
            "not yet valid",
            ca.clone(),
            pki.ca
                .issue_with_validity("n", now + day, now + 30 * day)
                .unwrap(),
            TlsFile::Cert,
        ),
        (
            "serverAuth only",
            ca.clone(),
            pki.ca.issue_with_usages("n", &[Usage::Server]).unwrap(),
            TlsFile::Cert,
        ),
        (
            "clientAuth only",
            ca.clone(),
            pki.ca.issue_with_usages("n", &[Usage::Client]).unwrap(),
            TlsFile::Cert,
        ),
        (
            "a leaf certificate as the CA file",
            leaf.cert_pem.clone(),
            pki.ca.issue("n").unwrap(),
            TlsFile::Ca,
        ),
        (
            "a certificate of another CA than the CA file",
            ca.clone(),
            other_ca.issue("n").unwrap(),
            TlsFile::Cert,
        ),
    ];
    for (label, ca_pem, cert, file) in cases {
        let files = pki.node_with(&format!("n-{}", label.replace(' ', "-")), &ca_pem, &cert);
        let mut config = fast_config("n", files.clone());
        config.tls = files.clone();
        match Cluster::start(config).await {
            Err(e) => {
                let NetError::TlsFile { file: f, path, .. } = &e else {
                    panic!("{label}: refused for another reason: {e}");
                };
                assert_eq!(*f, file, "{label}: {e}");
                let expected = if file == TlsFile::Ca {
                    &files.ca
                } else {
                    &files.cert
                };
                assert_eq!(path, expected, "{label}: the error names the file");
                assert!(e.to_string().contains(&*expected.to_string_lossy()), "{e}");
                eprintln!("{label}: {e}");
            }
            Ok(_) => panic!("{label}: the member started"),
        }
    }
    // And the good certificate starts, so the refusals above are about the certificates.
    let good = Cluster::start(fast_config("n", pki.node("n")))
        .await
        .unwrap();
    good.shutdown().await;
    // The problems are told apart.
    let problem = |cert: &swim_net::dev_certs::CertAndKey| {
        let files = pki.node_with("p", &ca, cert);
        let config = fast_config("n", files);
        async move {
            match Cluster::start(config).await {
                Err(NetError::TlsFile { problem, .. }) => problem,
                other => panic!("{other:?}"),
            }
        }
    };
    let expired = pki
        .ca
        .issue_with_validity("n", now - 30 * day, now - day)
        .unwrap();
    assert!(matches!(problem(&expired).await, TlsFileProblem::Expired));
    let server_only = pki.ca.issue_with_usages("n", &[Usage::Server]).unwrap();
    assert!(matches!(
        problem(&server_only).await,
        TlsFileProblem::WrongUsage("clientAuth")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_both_usages_is_never_a_member_whichever_side_dialled() {
    let pki = Pki::new();
    let node = Cluster::start(fast_config("node-0", pki.node("node-0")))
        .await
        .unwrap();
    node.join(&[]).unwrap();

    // A seed whose certificate allows serving only: the member dials it, refuses it.
    let before = refusals("wrong_usage");
    let server_only = pki.ca.issue_with_usages("seed", &[Usage::Server]).unwrap();
    let seed = raw_server(&server_only);
    let seed_addr = seed.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let mut accepted = 0;
        while let Some(incoming) = seed.accept().await {
            if incoming.await.is_ok() {
                accepted += 1;
            }
        }
        accepted
    });
    let joiner = Cluster::start(fast_config("node-1", pki.node("node-1")))
        .await
        .unwrap();
    joiner.join(&[seed_addr]).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || refusals("wrong_usage") > before).await,
        "the serverAuth-only seed was not refused"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!joiner.is_joined());
    assert_eq!(joiner.members().len(), 1, "{:?}", joiner.members());

    // A client whose certificate allows dialling only: the member refuses it as a server.
    let before = refusals("wrong_usage");
    let client_only = pki
        .ca
        .issue_with_usages("client", &[Usage::Client])
        .unwrap();
    let client = raw_client(&pki.ca.cert_pem(), Some(&client_only));
    if let Ok(conn) = client
        .connect(node.advertise_addr(), "node-0")
        .unwrap()
        .await
    {
        let _ = conn.send_datagram(Bytes::from_static(b"\x02hello"));
    }
    assert!(
        eventually(Duration::from_secs(5), || refusals("wrong_usage") > before).await,
        "the clientAuth-only client was not refused"
    );
    assert!(
        node.members().iter().all(|m| &*m.name == "node-0"),
        "{:?}",
        node.members()
    );
    accepting.abort();
    joiner.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_no_swim_alpn_is_refused_and_counted() {
    let pki = Pki::new();
    let node = Cluster::start(fast_config("node-0", pki.node("node-0")))
        .await
        .unwrap();
    let cert = pki.ca.issue("stranger").unwrap();
    for alpn in [None, Some(&b"h3"[..])] {
        let before = refusals("no_alpn");
        let client = raw_client_with_alpn(&pki.ca.cert_pem(), Some(&cert), alpn);
        let result = client
            .connect(node.advertise_addr(), "node-0")
            .unwrap()
            .await;
        assert!(result.is_err(), "{alpn:?}: connected");
        assert!(
            eventually(Duration::from_secs(5), || refusals("no_alpn") > before).await,
            "{alpn:?}: not counted"
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_certificate_is_refused_counts_the_alert_not_a_connection() {
    let metrics = Metrics::get();
    let pki = Pki::new();
    let nodes = start_cluster(&pki, 2, Duration::from_secs(20)).await;
    // Let the pair settle: steady state opens no connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unknown_ca = || metrics.total("swim_refused_by_peer_total", &[("alert", "unknown_ca")]);
    let opened_out = || metrics.total("swim_connections_opened_total", &[("direction", "out")]);
    let (alerts_before, opened_before) = (unknown_ca(), opened_out());
    // A member of another CA that trusts ours: it accepts node-0, node-0 refuses it.
    let other_ca = DevCa::new("another CA").unwrap();
    let both = format!("{}{}", pki.ca.cert_pem(), other_ca.cert_pem());
    let rogue_cert = other_ca.issue("rogue").unwrap();
    let rogue = Cluster::start(fast_config(
        "rogue",
        pki.node_with("rogue", &both, &rogue_cert),
    ))
    .await
    .unwrap();
    rogue.join(&[nodes[0].advertise_addr()]).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || unknown_ca() > alerts_before).await,
        "the peer's unknown_ca alert was not counted"
    );
    assert!(!rogue.is_joined());
    assert_eq!(
        opened_out(),
        opened_before,
        "a refused dial was counted as an opened connection"
    );
    assert!(nodes.iter().all(|n| n
        .members()
        .iter()
        .all(|m| m.state == MemberState::Alive && &*m.name != "rogue")));
    rogue.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

fn closed_for_credentials() -> f64 {
    Metrics::get().total(
        "swim_connections_closed_total",
        &[("reason", "credentials")],
    )
}

/// An open connection does not outlive the certificate it was accepted with: when node-2's
/// certificate expires, the others close their connections to it within `reload_interval`,
/// its new handshakes are refused, and it is declared dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_certificate_expires_is_disconnected_and_declared_dead() {
    let pki = Pki::new();
    let now = SystemTime::now();
    let lifetime = Duration::from_secs(12);
    let short = pki
        .ca
        .issue_with_validity("node-2", now - Duration::from_secs(3600), now + lifetime)
        .unwrap();
    let tweak = |c: &mut swim_net::ClusterConfig| c.reload_interval = Duration::from_millis(200);
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("node-{i}");
        let files = if i == 2 {
            pki.node_with(&name, &pki.ca.cert_pem(), &short)
        } else {
            pki.node(&name)
        };
        let mut config = fast_config(&name, files);
        tweak(&mut config);
        nodes.push(Cluster::start(config).await.unwrap());
    }
    nodes[0].join(&[]).unwrap();
    for n in &nodes[1..] {
        n.join(&[nodes[0].advertise_addr()]).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || nodes
            .iter()
            .all(|n| alive_count(n) == 3))
        .await
    );
    let closed = closed_for_credentials();
    let left = lifetime.saturating_sub(now.elapsed().unwrap());
    tokio::time::sleep(left).await;
    assert!(
        eventually(Duration::from_secs(3), || closed_for_credentials()
            >= closed + 2.0)
        .await,
        "connections to node-2 closed after its certificate expired: {}",
        closed_for_credentials() - closed
    );
    assert!(
        eventually(Duration::from_secs(20), || nodes[..2].iter().all(|n| {
            state_of(n, "node-2").is_some_and(|(s, _, _)| s == MemberState::Dead)
        }))
        .await,
        "node-2 declared dead once its certificate expired: {:?}",
        nodes[..2]
            .iter()
            .map(|n| state_of(n, "node-2"))
            .collect::<Vec<_>>()
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// When node-0's CA file changes to a CA that no longer vouches for its peers, node-0 closes
/// its connections to them at once (they stay open no longer than the files take to be
/// noticed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_peers_the_new_ca_does_not_vouch_for_are_closed() {
    let pki = Pki::new();
    let nodes = start_cluster_with(&pki, 3, Duration::from_secs(20), |c| {
        c.reload_interval = Duration::from_millis(200)
    })
    .await;
    let closed = closed_for_credentials();
    let files = pki.dir.path().join("node-0");
    let new_ca = DevCa::new("another CA").unwrap();
    let mine = new_ca.issue("node-0").unwrap();
    std::fs::write(files.join("ca.pem"), new_ca.cert_pem()).unwrap();
    std::fs::write(files.join("node-0.pem"), &mine.cert_pem).unwrap();
    swim_net::dev_certs::write_secret(&files.join("node-0.key"), &mine.key_pem).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || closed_for_credentials()
            >= closed + 2.0)
        .await,
        "node-0 closed its connections to the peers its new CA does not vouch for: {}",
        closed_for_credentials() - closed
    );
    for n in nodes {
        n.shutdown().await;
    }
}
