//! foca (2.0) members over real loopback UDP, all in one process, for the CPU side by side
//! of issue 16 §1 (`benches/scripts/cpu_side_by_side.py`): N members, each on its own
//! socket, foca's own `Config::new_lan(N)`, plaintext. They join through member 0; once
//! every member sees the N − 1 others a warm-up runs, then a measured window. Prints one
//! JSON line: process CPU (user + system, read as `quic_scenario` reads it) and the UDP
//! payload bytes and datagrams sent, each per member-second of the window.
//!
//! Each member is one tokio task owning its `Foca`, its socket and its timers: foca's
//! `Runtime` is implemented synchronously (a datagram is sent at once with `try_send_to`, a
//! timer goes into a min-heap ordered by deadline, then by foca's own `Timer` order, which
//! is what the scheduler of foca's `foca_insecure_udp_agent` example does), and one tokio
//! `Sleep`, re-armed only when the earliest deadline moves, wakes the task for due timers.
//!
//! `cargo run --release -p swim-benches --bin foca_udp -- --members 32 --duration 120`

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use foca::{Config, Foca, Identity, Notification, Runtime, Timer};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "foca members over loopback UDP in one process; prints one JSON line")]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 32)]
    members: usize,
    /// The tokio runtime every member runs on (the same choice as `quic_scenario`'s).
    #[arg(long, value_enum, default_value_t = swim_benches::Runtime::Multi)]
    runtime: swim_benches::Runtime,
    /// Length of the measured window, seconds (after join and warm-up).
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Seconds of steady traffic before the window opens.
    #[arg(long, default_value_t = 30.0)]
    warmup: f64,
    /// Seed of the members' randomness (member i gets seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A member: its address, and which process at it (foca's rejoin bumps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Id {
    addr: SocketAddr,
    bump: u32,
}

impl Identity for Id {
    type Addr = SocketAddr;

    /// Declared down while running: rejoin at once under the next identity.
    fn renew(&self) -> Option<Self> {
        Some(Id {
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.bump > other.bump
    }
}

type Member = Foca<Id, foca::PostcardCodec, Pcg64Mcg, foca::NoCustomBroadcast>;

/// What a member task reports to `main`: plain counters, read at the window's edges.
#[derive(Default)]
struct Shared {
    /// Active members this one knows (itself excluded).
    seen: AtomicUsize,
    bytes: AtomicU64,
    datagrams: AtomicU64,
    /// Datagrams the socket refused (`WouldBlock` or an error): not sent, not counted above.
    send_failures: AtomicU64,
    /// foca errors on input (a malformed or unexpected datagram).
    errors: AtomicU64,
    /// `MemberDown` notifications: in a steady cluster, each is a false death.
    downs: AtomicU64,
}

/// foca's gateway to this member's socket and timer heap.
struct Udp<'a> {
    socket: &'a UdpSocket,
    timers: &'a mut BinaryHeap<Reverse<(Instant, Timer<Id>)>>,
    now: Instant,
    shared: &'a Shared,
}

impl Runtime<Id> for Udp<'_> {
    fn notify(&mut self, notification: Notification<'_, Id>) {
        if let Notification::MemberDown(_) = notification {
            self.shared.downs.fetch_add(1, Relaxed);
        }
    }

    fn send_to(&mut self, to: Id, data: &[u8]) {
        match self.socket.try_send_to(data, to.addr) {
            Ok(n) => {
                self.shared.bytes.fetch_add(n as u64, Relaxed);
                self.shared.datagrams.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.shared.send_failures.fetch_add(1, Relaxed);
            }
        }
    }

    fn submit_after(&mut self, event: Timer<Id>, after: Duration) {
        self.timers.push(Reverse((self.now + after, event)));
    }
}

/// One member until the process ends: datagrams in, due timers in, in arrival order.
async fn run_member(
    mut foca: Member,
    socket: UdpSocket,
    announce_to: Option<Id>,
    max_packet_size: usize,
    shared: Arc<Shared>,
) {
    let mut timers = BinaryHeap::new();
    let mut buf = vec![0u8; max_packet_size];
    let far = Duration::from_secs(86_400);
    let sleep = tokio::time::sleep(far);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    if let Some(seed) = announce_to {
        // `try_send_to` fails with `WouldBlock` until the runtime has seen the new socket
        // writable: an announce sent before that was lost, and the member never joined.
        if socket.writable().await.is_err() {
            shared.errors.fetch_add(1, Relaxed);
        }
        let mut rt = Udp {
            socket: &socket,
            timers: &mut timers,
            now: Instant::now(),
            shared: &shared,
        };
        if foca.announce(seed, &mut rt).is_err() {
            shared.errors.fetch_add(1, Relaxed);
        }
    }
    loop {
        let next = timers.peek().map(|Reverse((at, _))| *at);
        if next != armed {
            sleep
                .as_mut()
                .reset(next.unwrap_or_else(|| Instant::now() + far));
            armed = next;
        }
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = received else { continue };
                let mut rt = Udp {
                    socket: &socket,
                    timers: &mut timers,
                    now: Instant::now(),
                    shared: &shared,
                };
                if foca.handle_data(&buf[..len], &mut rt).is_err() {
                    shared.errors.fetch_add(1, Relaxed);
                }
            }
            () = &mut sleep => {
                let now = Instant::now();
                while let Some(Reverse((at, _))) = timers.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((_, timer))) = timers.pop() else { break };
                    let mut rt = Udp { socket: &socket, timers: &mut timers, now, shared: &shared };
                    if foca.handle_timer(timer, &mut rt).is_err() {
                        shared.errors.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        shared.seen.store(foca.num_members(), Relaxed);
    }
}

/// The sum of one counter over all members.
fn total(shared: &[Arc<Shared>], counter: impl Fn(&Shared) -> &AtomicU64) -> u64 {
    shared.iter().map(|s| counter(s).load(Relaxed)).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    args.runtime.build()?.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.members;
    if n < 2 {
        return Err("--members must be at least 2".into());
    }
    let size = NonZeroU32::new(u32::try_from(n)?).ok_or("--members must be positive")?;
    let config = Config::new_lan(size);
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await?);
    }
    let ids = sockets
        .iter()
        .map(|s| {
            Ok(Id {
                addr: s.local_addr()?,
                bump: 0,
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let shared: Vec<Arc<Shared>> = (0..n).map(|_| Arc::default()).collect();
    let joining = std::time::Instant::now();
    for (i, socket) in sockets.into_iter().enumerate() {
        let rng = Pcg64Mcg::seed_from_u64(args.seed.wrapping_add(i as u64));
        let foca = Foca::new(ids[i].clone(), config.clone(), rng, foca::PostcardCodec);
        let announce_to = (i > 0).then(|| ids[0].clone());
        let max = config.max_packet_size.get();
        tokio::spawn(run_member(
            foca,
            socket,
            announce_to,
            max,
            shared[i].clone(),
        ));
    }
    while !shared.iter().all(|s| s.seen.load(Relaxed) == n - 1) {
        if joining.elapsed() > Duration::from_secs(120) {
            return Err("the cluster did not converge within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_s = joining.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    // The measured window.
    let counters = |shared: &[Arc<Shared>]| {
        [
            total(shared, |s| &s.bytes),
            total(shared, |s| &s.datagrams),
            total(shared, |s| &s.send_failures),
            total(shared, |s| &s.errors),
            total(shared, |s| &s.downs),
        ]
    };
    let before = counters(&shared);
    let cpu_start = swim_benches::process_cpu_time();
    let window_start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let cpu = (swim_benches::process_cpu_time() - cpu_start).as_secs_f64();
    let window_s = window_start.elapsed().as_secs_f64();
    let after = counters(&shared);
    let [bytes, datagrams, send_failures, errors, downs]: [u64; 5] =
        std::array::from_fn(|i| after[i] - before[i]);
    let member_s = n as f64 * window_s;
    let seen_min = shared.iter().map(|s| s.seen.load(Relaxed)).min();
    let report = json!({
        "implementation": "foca",
        "members": n,
        "duration_s": window_s,
        "warmup_s": args.warmup,
        "join_s": join_s,
        "seed": args.seed,
        "cpu_s_per_member_per_s": cpu / member_s,
        "bytes_per_member_per_s": bytes as f64 / member_s,
        "packets_per_member_per_s": datagrams as f64 / member_s,
        "send_failures": send_failures,
        "errors": errors,
        "member_down_notifications": downs,
        "min_members_seen_at_end": seen_min,
        "probe_period_s": config.probe_period.as_secs_f64(),
        "runtime": args.runtime.name(),
    });
    println!("{report}");
    Ok(())
}
