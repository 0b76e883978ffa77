//! Writes the seed corpora `tests/fuzz/corpus/<target>/seed-*` from real encoded messages: the
//! traffic of a simulated cluster (`swim_core::sim`, signed and unsigned), and certificates
//! made by `swim_net::dev_certs`. Replaces the seeds it wrote before; leaves other files.
//!
//! ```text
//! cargo run --manifest-path tests/fuzz/Cargo.toml --example seed_corpus
//! ```
//!
//! Each `node_inputs` seed is what `node-0` received in the simulation, in order and at its
//! time, for a node built with `node-0`'s own seed (checked by its boot id); the replay
//! prints how many of those inputs the fuzzed node took, to show that the seeds reach past
//! the decoder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swim_core::fuzzing::{self, MessageView};
use swim_core::sim::{Delivery, Sim, SimConfig};
use swim_core::{Config, Framing, MessageKind, PROTOCOL_VERSION};
use swim_fuzz::format::{Record, Writer, NAMES};
use swim_fuzz::node::{NodeInput, Peer, Setup, Step};
use swim_fuzz::MergeInput;

/// A cluster `node-0`..`node-3` joining through `node-0`: `node-1` broadcasts, `node-2`
/// changes its metadata, `node-3` crashes at 2 s and is declared dead; 45 s in all (every
/// node push-pulls at least once).
fn simulate(seed: u64, signed: bool) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members: 4,
        seed,
        node: Config::default(),
        converged_start: false,
        record_traffic: true,
        signed,
        ..SimConfig::default()
    });
    for (i, name) in NAMES.iter().take(4).enumerate() {
        assert_eq!(sim.name(i), *name, "the simulator's names are the pool's");
        assert_eq!(
            sim.addr(i),
            swim_fuzz::format::addr(i),
            "and so are its addresses"
        );
    }
    sim.run_for(Duration::from_millis(700));
    let now = sim.now();
    sim.node_mut(1)
        .expect("running")
        .broadcast(b"hello from node-1")
        .expect("small");
    sim.node_mut(2)
        .expect("running")
        .set_metadata(now, b"role=db")
        .expect("small");
    sim.run_for(Duration::from_millis(1300));
    sim.crash(3);
    sim.run_for(Duration::from_secs(43));
    assert_eq!(
        sim.net_stats().refused,
        0,
        "the simulation refused its own traffic"
    );
    sim
}

/// The seed `Sim::new` gives the node of slot 0: the simulation's seed RNG gives the
/// network's seed first, then one per node in slot order. Checked by the boot id.
fn node_0_seed(sim: &Sim, sim_seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(sim_seed);
    let _network = rng.next_u64();
    let seed = rng.next_u64();
    let setup = Setup {
        signed: false,
        session_framing: false,
        short: false,
        seed,
    };
    let boot_id = setup.node(sim.now()).boot_id();
    assert_eq!(
        boot_id,
        sim.node(0).expect("running").boot_id(),
        "node-0's seed"
    );
    seed
}

/// The bytes as `framing` frames them (the simulator sends with a version byte).
fn framed(payload: &[u8], framing: Framing) -> Vec<u8> {
    assert_eq!(payload[0], PROTOCOL_VERSION);
    match framing {
        Framing::Session => payload[1..].to_vec(),
        _ => payload.to_vec(),
    }
}

/// What `node-0` received, as steps, time moving on between deliveries.
fn steps_to_node_0(traffic: &[Delivery], framing: Framing, max: usize) -> Vec<Step> {
    // As in the simulation, node-0 starts the cluster: it joins with no seeds.
    let mut steps = vec![Step::Command {
        op: 3,
        data: vec![0],
    }];
    let mut at_ms = 0u128;
    for d in traffic.iter().filter(|d| d.to == 0) {
        if steps.len() + 2 > max {
            break;
        }
        let t = d.at.as_millis();
        if t > at_ms {
            steps.push(Step::Advance {
                ms: (t - at_ms).min(u128::from(u16::MAX)) as u16,
            });
            at_ms = t;
        }
        let from = Peer {
            name: d.from,
            addr: d.from,
        };
        let payload = framed(&d.payload, framing);
        steps.push(if d.reliable {
            Step::Stream { from, payload }
        } else {
            Step::Datagram { from, payload }
        });
    }
    steps
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}

/// The corpus folder of `target`, emptied of earlier seeds.
fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("corpus folder");
    for e in fs::read_dir(&dir).expect("corpus folder").flatten() {
        if e.file_name().to_string_lossy().starts_with("seed-") {
            fs::remove_file(e.path()).expect("old seed");
        }
    }
    dir
}

/// Subject alternative names as (kind, text) pairs (see `swim_fuzz::parse_sans`).
type Sans<'a> = &'a [(u8, &'a [u8])];

fn main() {
    let runs = [(8u64, true), (9u64, false)];
    let sims: Vec<(u64, bool, Sim)> = runs
        .iter()
        .map(|&(s, signed)| (s, signed, simulate(s, signed)))
        .collect();

    // wire_decode: every kind of message, both limits, session-framed body.
    let dir = corpus("wire_decode");
    let mut by_kind: BTreeMap<MessageKind, usize> = BTreeMap::new();
    let mut n = 0;
    for (_, _, sim) in &sims {
        for d in sim.traffic() {
            let kind = MessageKind::of_packet(Framing::VersionByte, &d.payload).expect("a kind");
            let count = by_kind.entry(kind).or_default();
            if *count >= 8 {
                continue;
            }
            *count += 1;
            let mut bytes = vec![(n % 2) as u8];
            bytes.extend_from_slice(&d.payload[1..]);
            write(&dir, &format!("seed-{}-{n:03}", kind.name()), &bytes);
            n += 1;
        }
    }
    println!("wire_decode: {n} seeds, by kind {by_kind:?}");

    // node_inputs: node-0's inputs, both framings, signed and not, a short and a long prefix.
    let dir = corpus("node_inputs");
    for (sim_seed, signed, sim) in &sims {
        let seed = node_0_seed(sim, *sim_seed);
        for session_framing in [false, true] {
            let setup = Setup {
                signed: *signed,
                session_framing,
                short: false,
                seed,
            };
            for max in [40, 160] {
                let steps = steps_to_node_0(sim.traffic(), setup.framing(), max);
                let input = NodeInput { setup, steps };
                let bytes = input.to_bytes();
                assert_eq!(NodeInput::parse(&bytes), input, "the seed reads back");
                let h = swim_fuzz::node_inputs(&input);
                let name = format!(
                    "seed-{}-{}-{max}",
                    if *signed { "signed" } else { "unsigned" },
                    if session_framing {
                        "session"
                    } else {
                        "versioned"
                    }
                );
                println!(
                    "node_inputs {name}: {} steps, {} bytes; node-0 took {} inputs, refused {}, holds {} members",
                    input.steps.len(),
                    bytes.len(),
                    h.accepted,
                    h.refused,
                    h.node.members().len()
                );
                write(&dir, &name, &bytes);
            }
        }
    }

    // push_pull_merge: real push-pulls, each merged into a view built from an earlier one.
    let dir = corpus("push_pull_merge");
    let mut n = 0;
    for (sim_seed, signed, sim) in &sims {
        let seed = node_0_seed(sim, *sim_seed);
        let pushes: Vec<&Delivery> = sim
            .traffic()
            .iter()
            .filter(|d| {
                MessageKind::of_packet(Framing::VersionByte, &d.payload)
                    == Some(MessageKind::PushPull)
            })
            .collect();
        let config = Config::default();
        let records = |d: &Delivery| {
            let p = fuzzing::decode(&d.payload, Framing::VersionByte, &config).expect("real");
            let flags = match p.message() {
                MessageView::PushPull { response, join, .. } => {
                    u8::from(response) << 1 | u8::from(join) << 2
                }
                _ => 0,
            };
            let r: Vec<Record> = p.state_records().iter().map(Record::of).collect();
            (flags, r)
        };
        for pair in pushes.windows(2).step_by((pushes.len() / 6).max(1)).take(6) {
            let (_, base) = records(pair[0]);
            let (flags, merged) = records(pair[1]);
            let input = MergeInput {
                setup: Setup {
                    signed: *signed,
                    session_framing: false,
                    short: n % 2 == 1,
                    seed,
                },
                base: base
                    .into_iter()
                    .filter(|r| r.name != NAMES[0])
                    .take(8)
                    .collect(),
                pause_ms: 1000,
                from: Peer {
                    name: pair[1].from.max(1),
                    addr: pair[1].from.max(1),
                },
                flags,
                records: merged,
            };
            let bytes = input.to_bytes();
            assert_eq!(MergeInput::parse(&bytes), input, "the seed reads back");
            let h = swim_fuzz::push_pull_merge(&input);
            println!(
                "push_pull_merge seed-{n:02}: {} + {} records, {} bytes; took {} inputs, refused {}",
                input.base.len(),
                input.records.len(),
                bytes.len(),
                h.accepted,
                h.refused
            );
            write(&dir, &format!("seed-{n:02}"), &bytes);
            n += 1;
        }
    }

    // tls_name: the certificates swim-node makes (a CA, a node certificate).
    let dir = corpus("tls_name");
    let ca = swim_net::dev_certs::DevCa::new("swim fuzz CA").expect("a CA");
    let node = ca.issue("node-1").expect("a node certificate");
    for (name, pem) in [("ca", ca.cert_pem()), ("node-1", node.cert_pem)] {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
        write(&dir, &format!("seed-{name}.der"), &pem.contents);
        println!(
            "tls_name seed-{name}.der: {:?}",
            swim_net::fuzzing::node_name_of(&pem.contents)
        );
    }

    // tls_name_sans: a node name; an IP first; a wildcard first; no DNS name.
    let dir = corpus("tls_name_sans");
    let san = |w: &mut Writer, kind: u8, text: &[u8]| {
        w.u8(kind);
        if kind == 2 {
            w.out.extend_from_slice(text);
        } else {
            w.short_blob(text);
        }
    };
    let seeds: [(&str, Sans<'_>); 4] = [
        ("node", &[(0, b"node-1")]),
        ("ip-first", &[(2, &[127, 0, 0, 1]), (0, b"node-2")]),
        ("wildcard-first", &[(0, b"*.swim.local"), (0, b"node-3")]),
        (
            "no-dns",
            &[(3, b"ops@example.com"), (4, b"spiffe://swim/node-4")],
        ),
    ];
    for (name, sans) in seeds {
        let mut w = Writer::default();
        for (kind, text) in sans {
            san(&mut w, *kind, text);
        }
        assert!(
            swim_fuzz::tls_name_sans(&w.out),
            "rcgen makes the {name} seed"
        );
        write(&dir, &format!("seed-{name}"), &w.out);
    }
    println!("tls_name_sans: {} seeds", seeds.len());
}
