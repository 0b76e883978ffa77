//! The one config loader of `swim-node run`: a TOML file, then `SWIM_*` environment
//! variables, then command-line flags (each later source overrides the earlier), ending in
//! validation. Every error names the key and the problem; nothing is bound before it passes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use swim_net::{ClusterConfig, TlsFiles};

/// A config problem, naming the key as written in the file.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {problem}")]
pub(crate) struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The file, as written. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    bind: Option<String>,
    advertise: Option<String>,
    seeds: Option<Vec<String>>,
    cluster_name: Option<String>,
    admin: Option<String>,
    tls: Option<FileTls>,
    swim: Option<FileSwim>,
    transport: Option<FileTransport>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSwim {
    probe_interval: Option<String>,
    probe_timeout: Option<String>,
    indirect_checks: Option<usize>,
    suspicion_mult: Option<u32>,
    suspicion_max_timeout_mult: Option<u32>,
    suspicion_confirmations: Option<u32>,
    gossip_interval: Option<String>,
    gossip_fanout: Option<usize>,
    retransmit_mult: Option<u32>,
    push_pull_interval: Option<String>,
    tombstone_timeout: Option<String>,
    lifeguard: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTransport {
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
}

/// Overrides for every key: flags, or `SWIM_*` environment variables (a flag wins).
#[derive(clap::Args, Debug, Default)]
pub(crate) struct Overrides {
    /// Node name; must be the DNS name in the node's certificate. [key: name]
    #[arg(long, env = "SWIM_NAME")]
    name: Option<String>,
    /// UDP address to bind. [key: bind] [default: 0.0.0.0:7946]
    #[arg(long, env = "SWIM_BIND")]
    bind: Option<String>,
    /// Address other members use; required when binding 0.0.0.0. [key: advertise]
    #[arg(long, env = "SWIM_ADVERTISE")]
    advertise: Option<String>,
    /// Seeds, comma-separated host:port (DNS names are re-resolved on every join retry).
    /// [key: seeds]
    #[arg(long, env = "SWIM_SEEDS", value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Cluster name; nodes of different clusters never merge. [key: cluster_name] [default: swim]
    #[arg(long, env = "SWIM_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// Admin HTTP address (/metrics, /health/live, /health/ready, /members).
    /// [key: admin] [default: 127.0.0.1:9946]
    #[arg(long, env = "SWIM_ADMIN")]
    admin: Option<String>,
    /// Cluster CA certificate (PEM). [key: tls.ca]
    #[arg(long, env = "SWIM_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Node certificate chain (PEM). [key: tls.cert]
    #[arg(long, env = "SWIM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Node private key (PEM). [key: tls.key]
    #[arg(long, env = "SWIM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// [key: swim.probe_interval] [default: 1s]
    #[arg(long, env = "SWIM_PROBE_INTERVAL")]
    probe_interval: Option<String>,
    /// [key: swim.probe_timeout] [default: 500ms]
    #[arg(long, env = "SWIM_PROBE_TIMEOUT")]
    probe_timeout: Option<String>,
    /// [key: swim.indirect_checks] [default: 3]
    #[arg(long, env = "SWIM_INDIRECT_CHECKS")]
    indirect_checks: Option<usize>,
    /// [key: swim.suspicion_mult] [default: 4]
    #[arg(long, env = "SWIM_SUSPICION_MULT")]
    suspicion_mult: Option<u32>,
    /// [key: swim.suspicion_max_timeout_mult] [default: 6]
    #[arg(long, env = "SWIM_SUSPICION_MAX_TIMEOUT_MULT")]
    suspicion_max_timeout_mult: Option<u32>,
    /// [key: swim.suspicion_confirmations] [default: 3]
    #[arg(long, env = "SWIM_SUSPICION_CONFIRMATIONS")]
    suspicion_confirmations: Option<u32>,
    /// [key: swim.gossip_interval] [default: 200ms]
    #[arg(long, env = "SWIM_GOSSIP_INTERVAL")]
    gossip_interval: Option<String>,
    /// [key: swim.gossip_fanout] [default: 3]
    #[arg(long, env = "SWIM_GOSSIP_FANOUT")]
    gossip_fanout: Option<usize>,
    /// [key: swim.retransmit_mult] [default: 4]
    #[arg(long, env = "SWIM_RETRANSMIT_MULT")]
    retransmit_mult: Option<u32>,
    /// [key: swim.push_pull_interval] [default: 30s]
    #[arg(long, env = "SWIM_PUSH_PULL_INTERVAL")]
    push_pull_interval: Option<String>,
    /// [key: swim.tombstone_timeout] [default: 120s]
    #[arg(long, env = "SWIM_TOMBSTONE_TIMEOUT")]
    tombstone_timeout: Option<String>,
    /// [key: swim.lifeguard] [default: true]
    #[arg(long, env = "SWIM_LIFEGUARD")]
    lifeguard: Option<bool>,
    /// [key: transport.max_connections] [default: 256]
    #[arg(long, env = "SWIM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// [key: transport.idle_timeout] [default: derived from cluster size and probe interval]
    #[arg(long, env = "SWIM_IDLE_TIMEOUT")]
    idle_timeout: Option<String>,
}

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub cluster: ClusterConfig,
    pub seeds: Vec<String>,
    pub admin: SocketAddr,
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| err(key, format!("{value:?} is not an IP:port address")))
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value).map_err(|e| {
        err(
            key,
            format!("{value:?} is not a duration like \"500ms\" or \"2s\": {e}"),
        )
    })
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))
}

/// Loads `path` (if any), applies the overrides, validates everything.
pub(crate) fn load(path: Option<&Path>, o: &Overrides) -> Result<NodeConfig, ConfigError> {
    let file: File = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", p.display())))?;
            toml::from_str(&text).map_err(|e| {
                let message = e.message().to_string();
                let key = message
                    .split('`')
                    .nth(1)
                    .map(str::to_string)
                    .unwrap_or_else(|| p.display().to_string());
                err(&key, message.trim().to_string())
            })?
        }
        None => File::default(),
    };
    let tls = file.tls.unwrap_or_default();
    let swim = file.swim.unwrap_or_default();
    let transport = file.transport.unwrap_or_default();

    let name = o
        .name
        .clone()
        .or(file.name)
        .ok_or_else(|| err("name", "is required"))?;
    let bind = addr(
        "bind",
        o.bind
            .as_deref()
            .or(file.bind.as_deref())
            .unwrap_or("0.0.0.0:7946"),
    )?;
    let advertise = match o.advertise.as_deref().or(file.advertise.as_deref()) {
        Some(a) => Some(addr("advertise", a)?),
        None if bind.ip().is_unspecified() => {
            return Err(err("advertise", format!("is required when bind is {bind}")))
        }
        None => None,
    };
    let admin = addr(
        "admin",
        o.admin
            .as_deref()
            .or(file.admin.as_deref())
            .unwrap_or("127.0.0.1:9946"),
    )?;
    let seeds = o.seeds.clone().or(file.seeds).unwrap_or_default();
    for s in &seeds {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(err("seeds", format!("{s:?} is not host:port"))),
        }
    }
    let files = TlsFiles {
        ca: o
            .tls_ca
            .clone()
            .or(tls.ca)
            .ok_or_else(|| err("tls.ca", "is required"))?,
        cert: o
            .tls_cert
            .clone()
            .or(tls.cert)
            .ok_or_else(|| err("tls.cert", "is required"))?,
        key: o
            .tls_key
            .clone()
            .or(tls.key)
            .ok_or_else(|| err("tls.key", "is required"))?,
    };
    readable("tls.ca", &files.ca)?;
    readable("tls.cert", &files.cert)?;
    readable("tls.key", &files.key)?;

    let mut c = ClusterConfig::new(name, bind, files);
    c.advertise = advertise;
    if let Some(v) = o.cluster_name.clone().or(file.cluster_name) {
        c.swim.cluster_name = v;
    }
    macro_rules! dur {
        ($field:ident, $target:expr, $key:literal) => {
            if let Some(v) = o.$field.as_deref().or(swim.$field.as_deref()) {
                $target = duration($key, v)?;
            }
        };
    }
    macro_rules! num {
        ($field:ident) => {
            if let Some(v) = o.$field.or(swim.$field) {
                c.swim.$field = v;
            }
        };
    }
    dur!(probe_interval, c.swim.probe_interval, "swim.probe_interval");
    dur!(probe_timeout, c.swim.probe_timeout, "swim.probe_timeout");
    dur!(
        gossip_interval,
        c.swim.gossip_interval,
        "swim.gossip_interval"
    );
    dur!(
        push_pull_interval,
        c.swim.push_pull_interval,
        "swim.push_pull_interval"
    );
    dur!(
        tombstone_timeout,
        c.swim.tombstone_timeout,
        "swim.tombstone_timeout"
    );
    num!(indirect_checks);
    num!(suspicion_mult);
    num!(suspicion_max_timeout_mult);
    num!(suspicion_confirmations);
    num!(gossip_fanout);
    num!(retransmit_mult);
    num!(lifeguard);
    if let Some(v) = o.max_connections.or(transport.max_connections) {
        c.max_connections = v;
    }
    if let Some(v) = o
        .idle_timeout
        .as_deref()
        .or(transport.idle_timeout.as_deref())
    {
        c.idle_timeout = Some(duration("transport.idle_timeout", v)?);
    }
    c.swim.validate().map_err(|e| match e {
        swim_core::ConfigError::OutOfBounds { field, reason } => {
            err(&format!("swim.{field}"), reason)
        }
        other => err("swim", other.to_string()),
    })?;
    c.validate().map_err(|e| err("transport", e.to_string()))?;
    Ok(NodeConfig {
        cluster: c,
        seeds,
        admin,
    })
}
