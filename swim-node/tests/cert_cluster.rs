//! `swim-node cert cluster`: what a one-shot container runs on every `compose up`. The first
//! run makes a CA and one certificate per name; a second run keeps them all.

mod support;

use support::*;

#[test]
fn cert_cluster_makes_a_ca_and_each_node_once_and_keeps_them_on_a_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_s = out.to_str().unwrap();
    let first = swim(&["cert", "cluster", "--out", out_s, "--names", "a-1,a-2"]);
    assert!(first.status.success(), "{first:?}");
    let files = [
        "ca/ca.pem",
        "ca/ca.key",
        "a-1/a-1.pem",
        "a-1/a-1.key",
        "a-1/ca.pem",
        "a-2/a-2.pem",
    ];
    let read = || -> Vec<Vec<u8>> {
        files
            .iter()
            .map(|f| std::fs::read(out.join(f)).unwrap())
            .collect()
    };
    let before = read();
    // The node's CA copy is the cluster CA.
    assert_eq!(before[0], before[4]);
    // A rerun, with one more name: the existing files are kept, the new one is made.
    let again = swim(&["cert", "cluster", "--out", out_s, "--names", "a-1,a-2,a-3"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        read(),
        before,
        "a rerun must not replace the CA or a node's key"
    );
    assert!(out.join("a-3/a-3.pem").exists());
    let a3_ca = std::fs::read(out.join("a-3/ca.pem")).unwrap();
    assert_eq!(a3_ca, before[0], "signed by the kept CA");

    let bad = swim(&["cert", "cluster", "--out", out_s, "--names", "ok,not valid"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid DNS name"));
}
