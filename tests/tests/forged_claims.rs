//! Claims forged by a holder of a cluster certificate who is not the member they are about,
//! over real QUIC + mutual TLS: "mallory" has a certificate from the cluster CA but was never
//! a member. Each datagram of the security issue's §1 changes no view and is counted; an
//! accusation that a member really signed is refuted by its target with one more than its
//! own incarnation, and one above what the target signed is refused by everyone.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use swim_core::sim::forge::{self, Forgery};
use swim_core::{Framing, Trust};
use swim_net::{CertTrust, Cluster, MemberState};
use swim_tests::*;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn refused(reason: &str) -> f64 {
    Metrics::get().total("swim_claims_refused_total", &[("reason", reason)])
}

/// What each member holds about `name`: state, incarnation, boot id and address.
fn views(nodes: &[Cluster], name: &str) -> Vec<Option<(MemberState, u32, u32, SocketAddr)>> {
    nodes
        .iter()
        .map(|n| {
            n.members()
                .iter()
                .find(|m| &*m.name == name)
                .map(|m| (m.state, m.incarnation, m.boot_id, m.addr))
        })
        .collect()
}

/// Mallory: a certificate of the cluster CA, QUIC connections to every member, and her
/// own key to sign with.
struct Mallory {
    conns: Vec<quinn::Connection>,
    key: CertTrust,
    _client: quinn::Endpoint,
}

impl Mallory {
    async fn connect(pki: &Pki, nodes: &[Cluster]) -> Self {
        let cert = pki.ca.issue("mallory").unwrap();
        let files = pki.node_with("mallory", &pki.ca.cert_pem(), &cert);
        let key = CertTrust::load(&files, "mallory").unwrap();
        let client = raw_client(&pki.ca.cert_pem(), Some(&cert));
        let mut conns = Vec::new();
        for n in nodes {
            let conn = client
                .connect(n.advertise_addr(), n.name())
                .unwrap()
                .await
                .unwrap();
            conns.push(conn);
        }
        Self {
            conns,
            key,
            _client: client,
        }
    }

    /// Sends `forgery`, signed with `signature`, to every member as a datagram.
    fn send(&self, forgery: &Forgery<'_>, signature: &[u8]) {
        let packet = Bytes::from(forge::gossip(Framing::Session, forgery, signature));
        for c in &self.conns {
            c.send_datagram(packet.clone()).unwrap();
        }
    }

    /// `forgery` signed with Mallory's own key.
    fn sign(&self, forgery: &Forgery<'_>) -> Vec<u8> {
        self.key.sign(&forge::claim_bytes("swim", forgery))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_a_certificate_holder_makes_about_others_change_no_view_and_are_counted() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::get();
    let pki = Pki::new();
    let nodes = start_cluster(&pki, 3, Duration::from_secs(20)).await;
    let mallory = Mallory::connect(&pki, &nodes).await;
    let x = "node-2";
    let before = views(&nodes, x);
    let (_, x_inc, x_boot, x_addr) = before[0].unwrap();
    let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let suspicions = metrics.total("swim_suspicions_total", &[("outcome", "started")]);
    let (bad, waited) = (refused("bad_signature"), refused("no_credential"));
    let forgeries = [
        Forgery::Left {
            name: x,
            incarnation: u32::MAX,
            addr: x_addr,
            boot_id: x_boot,
        },
        Forgery::Alive {
            name: x,
            incarnation: u32::MAX,
            addr: elsewhere,
            boot_id: 1,
        },
        Forgery::Suspect {
            name: x,
            incarnation: x_inc,
            accuser: "node-1",
        },
        Forgery::Dead {
            name: x,
            incarnation: x_inc,
            accuser: "node-1",
        },
    ];
    for f in &forgeries {
        mallory.send(f, &mallory.sign(f));
    }
    let phantom = Forgery::Alive {
        name: "phantom-1",
        incarnation: 0,
        addr: elsewhere,
        boot_id: 7,
    };
    mallory.send(&phantom, &mallory.sign(&phantom));
    // Each member refuses the four claims about node-2 (node-2 those about itself) at once;
    // the phantom's claim waits for a credential nobody can give, and gives up in 10 s.
    assert!(
        eventually(Duration::from_secs(5), || refused("bad_signature")
            >= bad + 12.0)
        .await,
        "bad signatures refused: {}",
        refused("bad_signature") - bad
    );
    assert!(
        eventually(Duration::from_secs(15), || refused("no_credential")
            >= waited + 3.0)
        .await,
        "phantom claims given up: {}",
        refused("no_credential") - waited
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(views(&nodes, x), before, "a view of node-2 changed");
    for n in &nodes {
        assert!(n.members().iter().all(|m| &*m.name != "phantom-1"));
        assert_eq!(alive_count(n), 3);
    }
    assert_eq!(
        metrics.total("swim_suspicions_total", &[("outcome", "started")]),
        suspicions,
        "no suspicion raised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accusation_a_member_signed_is_refuted_and_one_above_what_the_target_signed_is_refused()
{
    let _serial = SERIAL.lock().await;
    let pki = Pki::new();
    let nodes = start_cluster(&pki, 3, Duration::from_secs(20)).await;
    let mallory = Mallory::connect(&pki, &nodes).await;
    // node-1's own key (as if node-1 had really accused): Mallory only relays.
    let dir = pki.dir.path().join("node-1");
    let files = swim_net::TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("node-1.pem"),
        key: dir.join("node-1.key"),
    };
    let node_1 = CertTrust::load(&files, "node-1").unwrap();
    let x = "node-2";
    let x_inc = views(&nodes, x)[2].unwrap().1;
    let above = refused("above_signed");
    let too_high = Forgery::Suspect {
        name: x,
        incarnation: u32::MAX,
        accuser: "node-1",
    };
    mallory.send(
        &too_high,
        &node_1.sign(&forge::claim_bytes("swim", &too_high)),
    );
    // Each member asks Mallory for node-2's record at that incarnation (an honest relay
    // would hold it); she has none to give, and after 10 s the accusation is refused.
    assert!(
        eventually(Duration::from_secs(15), || refused("above_signed")
            >= above + 3.0)
        .await,
        "refused above what node-2 signed: {}",
        refused("above_signed") - above
    );
    assert!(views(&nodes, x)
        .iter()
        .all(|v| v.is_some_and(|(s, inc, _, _)| s == MemberState::Alive && inc == x_inc)));
    let genuine = Forgery::Suspect {
        name: x,
        incarnation: x_inc,
        accuser: "node-1",
    };
    mallory.send(
        &genuine,
        &node_1.sign(&forge::claim_bytes("swim", &genuine)),
    );
    assert!(
        eventually(Duration::from_secs(10), || views(&nodes, x).iter().all(
            |v| v.is_some_and(|(s, inc, _, _)| s == MemberState::Alive && inc == x_inc + 1)
        ))
        .await,
        "node-2 refuted with one more than its own: {:?}",
        views(&nodes, x)
    );
}
