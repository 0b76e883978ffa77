//! `swim-node health`: asks a running node's admin server whether it is live (or ready), for
//! a container `HEALTHCHECK` or a Kubernetes exec probe in an image without a shell or curl.
//! Exit code 0 when it is; otherwise non-zero, with one line saying why.

use std::time::Duration;

use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node's admin address: `host:port` (as `run --admin`) or `http://host:port`.
    #[arg(long, env = "SWIM_HEALTH_ADMIN", default_value = "127.0.0.1:9946")]
    admin: String,
    /// Ask whether the node is ready (joined the cluster) instead of only live.
    #[arg(long)]
    ready: bool,
    /// Give up after this long (connect and answer).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let base = admin_url(&args.admin)?;
    let what = if args.ready { "ready" } else { "live" };
    let url = format!("{base}/health/{what}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(args.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(&url)
        .call()
        .with_context(|| format!("not {what}: no answer from {url}"))?;
    let status = resp.status();
    // The body is a short reason ("not joined yet"); keep the output to one line.
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    let reason = body.lines().next().unwrap_or("").trim();
    if !status.is_success() {
        bail!("not {what}: {url} answered {status}: {reason}");
    }
    println!("{what}");
    Ok(())
}

/// The admin server's base URL from `host:port` (what `run --admin` takes) or an
/// `http://` URL; a trailing `/` is dropped.
pub(crate) fn admin_url(admin: &str) -> anyhow::Result<String> {
    let admin = admin.trim().trim_end_matches('/');
    let url = match admin.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => admin.to_string(),
        Some((scheme, _)) => bail!(
            "admin address {admin:?}: the admin server speaks plain http, not {scheme}:// \
             (give host:port or http://host:port)"
        ),
        None => format!("http://{admin}"),
    };
    let authority = &url["http://".len()..];
    let host_port = authority.split('/').next().unwrap_or("");
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(url),
        _ => bail!("admin address {admin:?}: expected host:port, e.g. 127.0.0.1:9946"),
    }
}

#[cfg(test)]
mod tests {
    use super::admin_url;

    #[test]
    fn admin_url_takes_host_port_like_run_and_a_url() {
        assert_eq!(
            admin_url("127.0.0.1:9946").unwrap(),
            "http://127.0.0.1:9946"
        );
        assert_eq!(admin_url("[::1]:9946").unwrap(), "http://[::1]:9946");
        assert_eq!(admin_url("swim-0:9946").unwrap(), "http://swim-0:9946");
        assert_eq!(
            admin_url("http://10.0.0.1:9946/").unwrap(),
            "http://10.0.0.1:9946"
        );
    }

    #[test]
    fn admin_url_refuses_what_it_cannot_reach_with_a_reason() {
        for bad in ["", "9946", "host", "host:port", "https://h:9946", "http://"] {
            let e = admin_url(bad).unwrap_err().to_string();
            assert!(e.contains("admin address"), "{bad}: {e}");
        }
    }
}
