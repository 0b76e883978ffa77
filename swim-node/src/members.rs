//! `swim-node members`: asks a running node's admin server for its view.

use anyhow::Context;

use crate::admin::MemberJson;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node's admin address: `host:port` (as `run --admin`) or `http://host:port`.
    #[arg(long, default_value = "127.0.0.1:9946")]
    admin: String,
    /// Print the JSON as served instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let url = format!("{}/members", crate::health::admin_url(&args.admin)?);
    let body = ureq::get(&url)
        .call()
        .with_context(|| format!("asking {url}"))?
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of {url}"))?;
    let members: Vec<MemberJson> = serde_json::from_str(&body)
        .with_context(|| format!("{url} did not answer a member list"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&members)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<22} {:<8} {:>11}  {:<20}  METADATA",
        "NAME", "ADDRESS", "STATE", "INCARNATION", "SINCE"
    );
    for m in &members {
        println!(
            "{:<24} {:<22} {:<8} {:>11}  {:<20}  {}",
            m.name,
            m.address,
            m.state,
            m.incarnation,
            m.since,
            m.metadata.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
