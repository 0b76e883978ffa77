//! Support for swim's cross-crate integration tests: a throw-away cluster PKI, fast protocol
//! timings, polling helpers, raw QUIC peers for bad-peer tests, a process-wide metrics
//! recorder whose values accumulate across snapshots, and the seed of each test's protocol
//! randomness, printed when the test fails.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use swim_net::dev_certs::{self, CertAndKey, DevCa};
use swim_net::{Cluster, ClusterConfig, MemberState, TlsFiles};

thread_local! {
    /// The seed of the test running on this thread (every test runs its body on its own
    /// thread, tokio tests included: `block_on`).
    static TEST_SEED: Cell<Option<u64>> = const { Cell::new(None) };
    /// Member configs made so far by this test: a member started again under its name is
    /// another process, with another seed (and boot id).
    static CONFIGS_MADE: Cell<u64> = const { Cell::new(0) };
}

/// The variable that fixes a test's seed.
pub const SEED_VARIABLE: &str = "SWIM_TEST_SEED";

/// This test's seed: `SWIM_TEST_SEED` if set, else a fresh random one, the same for the
/// whole test. Members' protocol seeds derive from it and their names ([`fast_config`]).
pub fn test_seed() -> u64 {
    TEST_SEED.with(|s| {
        *s.get().get_or_insert_with(|| {
            let chosen = std::env::var(SEED_VARIABLE)
                .ok()
                .and_then(|v| v.parse().ok());
            let seed = chosen.unwrap_or_else(|| {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(0x5eed);
                h.finish()
            });
            s.set(Some(seed));
            seed
        })
    })
}

/// The protocol seed of the next member process: the test's seed mixed with the member's
/// name and how many configs the test made before.
fn member_seed(name: &str) -> u64 {
    let nth = CONFIGS_MADE.with(|n| n.replace(n.get() + 1));
    let start = (test_seed() ^ nth.wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ 0xcbf2_9ce4_8422_2325;
    name.bytes().fold(start, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A cluster CA and a temporary directory for the nodes' files. Every test makes one, so it
/// also carries the test's seed: dropped while the test panics, it prints the line that
/// replays the test's protocol choices (network timing stays real).
pub struct Pki {
    /// The CA.
    pub ca: DevCa,
    /// Where the PEM files go.
    pub dir: tempfile::TempDir,
    seed: u64,
}

impl Drop for Pki {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "this test's seed: {SEED_VARIABLE}={} (replays its members' protocol choices)",
                self.seed
            );
        }
    }
}

impl Pki {
    /// A fresh CA.
    pub fn new() -> Self {
        Self {
            ca: DevCa::new("swim test CA").unwrap(),
            dir: tempfile::tempdir().unwrap(),
            seed: test_seed(),
        }
    }

    /// Files for node `name`, certificate signed by this CA.
    pub fn node(&self, name: &str) -> TlsFiles {
        self.ca
            .write_node(&self.dir.path().join(name), name)
            .unwrap()
    }

    /// Files for `name` with a given certificate (e.g. expired, or from another CA).
    pub fn node_with(&self, name: &str, ca_pem: &str, cert: &CertAndKey) -> TlsFiles {
        dev_certs::write_files(
            &self.dir.path().join(format!("{name}-custom")),
            ca_pem,
            name,
            cert,
        )
        .unwrap()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// Fast LAN timings for tests: 300 ms protocol period, 100 ms probe timeout, and an idle
/// timeout long enough that connections survive the test; the protocol seeded from the
/// test's seed, the member's name and how many members the test configured before.
pub fn fast_config(name: &str, tls: TlsFiles) -> ClusterConfig {
    let mut c = ClusterConfig::new(name, "127.0.0.1:0".parse().unwrap(), tls);
    c.seed = Some(member_seed(name));
    c.swim.probe_interval = Duration::from_millis(300);
    c.swim.probe_timeout = Duration::from_millis(100);
    c.swim.gossip_interval = Duration::from_millis(100);
    c.swim.push_pull_interval = Duration::from_secs(5);
    c.idle_timeout = Some(Duration::from_secs(30));
    c
}

/// Starts `n` members named `node-0..n`, joins them all through node-0, and waits (at most
/// `converge_within`) until every one sees all `n` alive; panics with the counts otherwise.
pub async fn start_cluster(pki: &Pki, n: usize, converge_within: Duration) -> Vec<Cluster> {
    start_cluster_with(pki, n, converge_within, |_| {}).await
}

/// [`start_cluster`], with each member's [`fast_config`] adjusted by `tweak` first.
pub async fn start_cluster_with(
    pki: &Pki,
    n: usize,
    converge_within: Duration,
    tweak: impl Fn(&mut ClusterConfig),
) -> Vec<Cluster> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let name = format!("node-{i}");
        let mut config = fast_config(&name, pki.node(&name));
        tweak(&mut config);
        nodes.push(Cluster::start(config).await.unwrap());
    }
    let seed = nodes[0].advertise_addr();
    nodes[0].join(&[]).unwrap();
    for node in &nodes[1..] {
        node.join(&[seed]).unwrap();
    }
    assert!(
        eventually(converge_within, || nodes
            .iter()
            .all(|c| alive_count(c) == n))
        .await,
        "alive counts: {:?}",
        nodes.iter().map(alive_count).collect::<Vec<_>>()
    );
    nodes
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How `viewer` sees the member called `name`.
pub fn state_of(viewer: &Cluster, name: &str) -> Option<(MemberState, u32, u32)> {
    viewer
        .members()
        .iter()
        .find(|m| &*m.name == name)
        .map(|m| (m.state, m.incarnation, m.boot_id))
}

/// Number of members `viewer` holds alive.
pub fn alive_count(viewer: &Cluster) -> usize {
    viewer
        .members()
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count()
}

/// The process-wide metrics recorder, accumulating every snapshot (the debugging recorder
/// drains values on each snapshot, so all tests read through this one accumulator).
pub struct Metrics {
    snapshotter: Snapshotter,
    totals: Mutex<HashMap<String, f64>>,
}

impl Metrics {
    /// Installs the recorder on first use.
    pub fn get() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder
                .install()
                .expect("no other recorder in the test binary");
            Metrics {
                snapshotter,
                totals: Mutex::new(HashMap::new()),
            }
        })
    }

    /// Sum of counter increments, or count of histogram samples, over every series of
    /// `name` whose labels include all of `labels`.
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let id = format!(
                "{}{{{}}}",
                key.name(),
                key.labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let add = match value {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Histogram(h) => h.len() as f64,
                DebugValue::Gauge(_) => 0.0,
            };
            *totals.entry(id).or_default() += add;
        }
        totals
            .iter()
            .filter(|(id, _)| {
                id.starts_with(&format!("{name}{{"))
                    && labels.iter().all(|(k, v)| id.contains(&format!("{k}={v}")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// A bare QUIC client endpoint speaking swim's ALPN, trusting `ca_pem`, presenting
/// `client` if given: for bad-peer tests.
pub fn raw_client(ca_pem: &str, client: Option<&CertAndKey>) -> quinn::Endpoint {
    raw_client_with_alpn(ca_pem, client, Some(swim_core::ALPN))
}

/// [`raw_client`], offering `alpn` (or no ALPN at all).
pub fn raw_client_with_alpn(
    ca_pem: &str,
    client: Option<&CertAndKey>,
    alpn: Option<&[u8]>,
) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match client {
        Some(ck) => {
            let chain = CertificateDer::pem_slice_iter(ck.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(ck.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

/// A bare QUIC server endpoint on loopback speaking swim's ALPN, presenting `cert` and
/// asking no client certificate: a peer whose own certificate a member must judge.
pub fn raw_server(cert: &CertAndKey) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![swim_core::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Binds `addr` once it is free again (a dropped endpoint releases its socket shortly after).
pub async fn start_at(mut config: ClusterConfig, addr: SocketAddr) -> Cluster {
    config.bind = addr;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Cluster::start(config.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("could not bind {addr}: {e}"),
        }
    }
}
