//! Replays, as plain tests, every committed input of every target: the seed corpora
//! (`corpus/<target>/`) and every input that ever made a target fail (`regressions/<target>/`,
//! one file per crash found, named after what it found). `cargo test --manifest-path
//! tests/fuzz/Cargo.toml` runs them without libFuzzer.

use std::fs;
use std::path::Path;

use swim_fuzz::node::NodeInput;
use swim_fuzz::MergeInput;

/// Every file under `<folder>/<target>/`, sorted by name.
fn inputs(folder: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(folder)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("readable input"))
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut n = 0;
    for folder in ["corpus", "regressions"] {
        for (name, bytes) in inputs(folder, target) {
            eprintln!("{folder}/{target}/{name}");
            run(&bytes);
            n += 1;
        }
    }
    n
}

#[test]
fn wire_decode_inputs_replay() {
    assert!(replay("wire_decode", swim_fuzz::wire_decode) > 0, "no seed");
}

#[test]
fn node_inputs_replay() {
    let n = replay("node_inputs", |b| {
        drop(swim_fuzz::node_inputs(&NodeInput::parse(b)))
    });
    assert!(n > 0, "no seed");
}

#[test]
fn push_pull_merge_inputs_replay() {
    let n = replay("push_pull_merge", |b| {
        drop(swim_fuzz::push_pull_merge(&MergeInput::parse(b)))
    });
    assert!(n > 0, "no seed");
}

#[test]
fn tls_name_inputs_replay() {
    assert!(replay("tls_name", swim_fuzz::tls_name) > 0, "no seed");
}

#[test]
fn tls_name_sans_inputs_replay() {
    let n = replay("tls_name_sans", |b| {
        swim_fuzz::tls_name_sans(b);
    });
    assert!(n > 0, "no seed");
}

/// The node_inputs seeds are real traffic that the fuzzed node takes: most inputs of every
/// seed are accepted, so fuzzing starts from deep states, not from decoder refusals.
#[test]
fn node_inputs_seeds_are_mostly_accepted() {
    for (name, bytes) in inputs("corpus", "node_inputs") {
        if !name.starts_with("seed-") {
            continue;
        }
        let h = swim_fuzz::node_inputs(&NodeInput::parse(&bytes));
        assert!(
            h.accepted >= 4 * h.refused && h.node.members().len() >= 3,
            "{name}: {} accepted, {} refused, {} members",
            h.accepted,
            h.refused,
            h.node.members().len()
        );
    }
}

/// The byte formats read back what they write: any bytes read as an input, written, read
/// again give the same input (so seeds and printed crash inputs rebuild exactly).
#[test]
fn structured_inputs_read_back_what_they_write() {
    // xorshift: a fixed stream of arbitrary bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..1500usize {
        let bytes: Vec<u8> = (0..len % 700).map(|_| next() as u8).collect();
        let input = NodeInput::parse(&bytes);
        assert_eq!(NodeInput::parse(&input.to_bytes()), input, "{bytes:?}");
        let input = MergeInput::parse(&bytes);
        assert_eq!(MergeInput::parse(&input.to_bytes()), input, "{bytes:?}");
    }
}
