//! Three cluster members in one process over real QUIC + mutual TLS on loopback, with
//! throw-away certificates: join, watch the event stream, broadcast, set metadata, then one
//! member leaves gracefully and another is dropped (a crash) and detected.
//!
//! Run: `cargo run -p swim-net --features dev-certs --example three_members`

use std::time::Duration;

use swim_net::dev_certs::DevCa;
use swim_net::{Cluster, ClusterConfig, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("swim-example-{}", std::process::id()));
    let ca = DevCa::new("example cluster CA")?;

    let mut members = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let tls = ca.write_node(&dir.join(name), name)?;
        let mut config = ClusterConfig::new(name, "127.0.0.1:0".parse()?, tls);
        config.swim.probe_interval = Duration::from_millis(500);
        config.swim.probe_timeout = Duration::from_millis(200);
        members.push(Cluster::start(config).await?);
    }

    // Print alpha's view of the world as it changes.
    let mut events = members[0].events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::MemberUp { member, .. } => println!("alpha: {} is up", member.name),
                Event::MemberSuspect { member, accuser } => {
                    println!("alpha: {} is suspect (accused by {accuser})", member.name)
                }
                Event::MemberDown {
                    member,
                    since_last_alive,
                    ..
                } => println!(
                    "alpha: {} is dead ({:.1} s after it was last heard alive)",
                    member.name,
                    since_last_alive.as_secs_f64()
                ),
                Event::MemberLeft { member } => println!("alpha: {} left", member.name),
                Event::MemberUpdated { member } => println!(
                    "alpha: {} updated its metadata to {:?}",
                    member.name,
                    member.metadata.as_deref().map(String::from_utf8_lossy)
                ),
                Event::UserBroadcast { origin, payload } => {
                    println!(
                        "alpha: broadcast from {origin}: {}",
                        String::from_utf8_lossy(&payload)
                    )
                }
                _ => {}
            }
        }
    });

    let seed = members[0].advertise_addr();
    members[0].join(&[])?;
    for m in &members[1..] {
        m.join(&[seed])?;
        m.joined().await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    members[1].set_metadata(b"zone=eu-west".to_vec()).await?;
    members[2].broadcast(b"hello from charlie".to_vec()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let charlie = members.pop().expect("three members");
    charlie.leave(Duration::from_secs(5)).await?;
    charlie.shutdown().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("dropping bravo without a leave (a crash)...");
    drop(members.pop());
    tokio::time::sleep(Duration::from_secs(15)).await;

    for m in members[0].members().iter() {
        println!(
            "final view of alpha: {:<8} {:?} incarnation {}",
            m.name, m.state, m.incarnation
        );
    }
    members.pop().expect("alpha").shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
