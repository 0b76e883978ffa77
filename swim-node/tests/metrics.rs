//! The first scrape of a freshly started `swim-node run` holds every metric family that
//! `swim-net/METRICS.md` documents, histograms as histograms with the documented buckets at
//! zero, so `rate()` over them works from the first event.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

mod support;

use support::*;

const METRICS_MD: &str = include_str!("../../swim-net/METRICS.md");

/// Metric names documented in a table row's first cell: "| `swim_x` | type | ...".
fn documented() -> Vec<(String, String)> {
    METRICS_MD
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.get(2)?;
            ((name.starts_with("swim_") || name.starts_with("process_"))
                && ["counter", "gauge", "histogram"].contains(kind))
            .then(|| (name.to_string(), kind.to_string()))
        })
        .collect()
}

fn documented_buckets() -> Vec<String> {
    let line = METRICS_MD
        .lines()
        .find_map(|l| l.strip_prefix("`buckets: "))
        .expect("METRICS.md lists the buckets");
    line.trim_end_matches('`')
        .split_whitespace()
        .map(|b| b.parse::<f64>().unwrap().to_string())
        .collect()
}

#[test]
fn the_first_scrape_has_every_documented_family_and_histograms_with_zero_buckets() {
    let families = documented();
    assert!(families.len() > 50, "parsed {families:?}");
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &["m0"]);
    // A seed that never answers: the node stays unjoined, nothing happens, no event is
    // recorded, so only registration at start can put the families there.
    let mut p = spawn(dir.path(), "m0", Some(&format!("127.0.0.1:{}", free_udp())));
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Some(t) = get(&format!("{}/metrics", p.admin)) {
            break t;
        }
        assert!(Instant::now() < deadline, "{}", log_of(dir.path(), "m0"));
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = p.child.kill();
    let _ = p.child.wait();

    let types: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_string(), w.next().unwrap().to_string())
        })
        .collect();
    assert!(
        !types.iter().any(|(_, t)| t == "summary"),
        "no summaries:\n{text}"
    );
    let mut missing = Vec::new();
    for (name, kind) in &families {
        match types.iter().find(|(n, _)| n == name) {
            Some((_, t)) if t == kind => {}
            Some((_, t)) => missing.push(format!("{name}: {t}, documented as {kind}")),
            None => missing.push(format!("{name}: absent")),
        }
    }
    assert!(missing.is_empty(), "{missing:#?}\n{text}");
    // Nothing exported that is not documented.
    let documented: BTreeSet<&str> = families.iter().map(|(n, _)| n.as_str()).collect();
    let undocumented: Vec<&str> = types
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !documented.contains(n))
        .collect();
    assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");

    let samples = parse_prometheus(&text);
    let value = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
    let buckets = documented_buckets();
    for (name, _) in families.iter().filter(|(_, k)| k == "histogram") {
        let les: Vec<String> = samples
            .iter()
            .filter_map(|(s, _)| {
                s.strip_prefix(&format!("{name}_bucket{{le=\""))?
                    .strip_suffix("\"}")
                    .map(str::to_string)
            })
            .filter(|le| le != "+Inf")
            .map(|le| le.parse::<f64>().unwrap().to_string())
            .collect();
        assert_eq!(les, buckets, "{name}: the documented buckets");
        assert_eq!(value(&format!("{name}_bucket{{le=\"+Inf\"}}")), Some(0.0));
        assert_eq!(value(&format!("{name}_count")), Some(0.0), "{name}");
    }
    assert_eq!(
        value("swim_false_positives_total{kind=\"death\"}"),
        Some(0.0)
    );
    assert_eq!(value("swim_joined"), Some(0.0), "a seed never answered");
    assert!(
        value("swim_certificate_expiry_timestamp_seconds").unwrap()
            > std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
    );
    assert!(value("process_resident_memory_bytes").unwrap() > 0.0);
    assert!(
        samples
            .iter()
            .any(|(s, v)| s.starts_with("swim_build_info{") && *v == 1.0),
        "{text}"
    );
}
