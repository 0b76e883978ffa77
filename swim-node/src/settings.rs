//! The one description of every setting `swim-node` reads. Each section is one serde struct
//! whose field names are the config file's keys; the flags (`--probe-interval`), the `SWIM_*`
//! environment variables, the defaults shown by `--help` and `simulate`'s protocol defaults
//! all come from it, and its `Default` is the libraries' own defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swim_net::{ClusterConfig, TlsFiles};

/// How a setting's value is written, checked wherever it comes from (file, flag, variable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Count,
    Switch,
    Duration,
    List,
}

/// The kind of value a settings type holds.
pub(crate) trait Value {
    const KIND: Kind;
}

macro_rules! kinds {
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $( impl Value for $ty { const KIND: Kind = Kind::$kind; } )*
    };
}

kinds!(
    String => Text,
    PathBuf => Text,
    u32 => Count,
    usize => Count,
    bool => Switch,
    Dur => Duration,
    Vec<String> => List,
);

impl<T: Value> Value for Option<T> {
    const KIND: Kind = T::KIND;
}

/// One setting: where it lives in the file, how its flag and variable are spelled, what it
/// means.
#[derive(Debug)]
pub(crate) struct Key {
    /// The file section (`""` for top-level keys).
    pub(crate) section: &'static str,
    /// Put before the field name in the flag and the variable (`tls-`), or nothing.
    pub(crate) prefix: &'static str,
    pub(crate) field: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) kind: Kind,
}

impl Key {
    /// The key as written in the file: `swim.probe_interval`, `name`.
    pub(crate) fn path(&self) -> String {
        if self.section.is_empty() {
            self.field.to_string()
        } else {
            format!("{}.{}", self.section, self.field)
        }
    }

    /// The flag, without its dashes: `probe-interval`, `tls-ca`.
    pub(crate) fn flag(&self) -> String {
        format!("{}{}", self.prefix, self.field.replace('_', "-"))
    }

    /// The environment variable: `SWIM_PROBE_INTERVAL`, `SWIM_TLS_CA`.
    pub(crate) fn env(&self) -> String {
        format!("SWIM_{}", self.flag().replace('-', "_").to_uppercase())
    }

    /// The documentation, one line, without the leading space of `///` comments.
    pub(crate) fn doc(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A duration written as humans do: `500ms`, `2s`, `1h 30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

impl From<Duration> for Dur {
    fn from(d: Duration) -> Self {
        Dur(d)
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Whole seconds as seconds ("120s", as the docs write them), the rest as humantime
        // has it ("500ms").
        if self.0.subsec_nanos() == 0 && self.0 < Duration::from_secs(3600) {
            s.collect_str(&format_args!("{}s", self.0.as_secs()))
        } else {
            s.collect_str(&humantime::format_duration(self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration, or says what one looks like.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"500ms\" or \"2s\": {e}"))
}

/// Declares one section of settings: the serde struct (defaults from `Default`), and the
/// list of its keys with their docs and kinds.
macro_rules! section {
    (
        $(#[$smeta:meta])*
        struct $name:ident in $section:literal, flags $prefix:literal {
            $( $(#[doc = $doc:literal])+ $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(crate) struct $name {
            $( $(#[doc = $doc])+ pub(crate) $field: $ty, )*
        }

        impl $name {
            /// Every key of this section, in declaration order.
            pub(crate) const KEYS: &'static [Key] = &[ $( Key {
                section: $section,
                prefix: $prefix,
                field: stringify!($field),
                doc: concat!($($doc),+),
                kind: <$ty as Value>::KIND,
            }, )* ];
        }
    };
}

section! {
    /// Top-level keys: who this node is and where it listens.
    struct General in "", flags "" {
        /// Node name; must be the DNS name in the node's certificate. Required.
        name: Option<String>,
        /// UDP address the QUIC endpoint binds.
        bind: String,
        /// Address other members use; required when binding 0.0.0.0 (in Kubernetes: the pod IP).
        advertise: Option<String>,
        /// Seeds, comma-separated host:port (DNS names are resolved again on every join retry).
        seeds: Vec<String>,
        /// Cluster name; nodes of different clusters never merge.
        cluster_name: String,
        /// Admin HTTP address (/metrics, /health/live, /health/ready, /members).
        admin: String,
    }
}

section! {
    /// `[tls]`: the PEM files. Required.
    #[derive(Default)]
    struct Tls in "tls", flags "tls-" {
        /// Cluster CA certificate (PEM): peers must chain to it.
        ca: Option<PathBuf>,
        /// This node's certificate chain (PEM).
        cert: Option<PathBuf>,
        /// This node's private key (PEM; keep it 0600).
        key: Option<PathBuf>,
    }
}

section! {
    /// `[swim]`: the protocol's settings, as in `swim_core::Config` (whose docs say more).
    struct Swim in "swim", flags "" {
        /// Time between two probes of this node (one protocol period).
        probe_interval: Dur,
        /// Direct-ack deadline before asking others to probe; below probe_interval.
        probe_timeout: Dur,
        /// Members asked to probe a target that missed its direct ack (SWIM's k).
        indirect_checks: usize,
        /// Lifeguard α: minimum suspicion timeout = α · log10(N) · probe_interval.
        suspicion_mult: u32,
        /// Lifeguard β: maximum suspicion timeout = β · the minimum.
        suspicion_max_timeout_mult: u32,
        /// Lifeguard K: independent confirmations that bring a suspicion down to the minimum.
        suspicion_confirmations: u32,
        /// Time between two gossip rounds.
        gossip_interval: Dur,
        /// Members sent each gossip round.
        gossip_fanout: usize,
        /// λ: each update is sent λ · ⌈log10(N + 1)⌉ times.
        retransmit_mult: u32,
        /// Push-pull base interval, scaled up above 32 members; 0s turns it off.
        push_pull_interval: Dur,
        /// How long a member that left is kept before it is forgotten.
        tombstone_timeout: Dur,
        /// How long a dead member stays listed (as dead) and is contacted to heal partitions.
        reconnect_timeout: Dur,
        /// How often one dead member (and, if the view shrank, a seed) is contacted.
        reconnect_interval: Dur,
        /// Dead members kept at most; past it the longest-dead is forgotten.
        max_dead_members: usize,
        /// Lifeguard on (local health, nacks, dynamic suspicion, buddy system) or off.
        lifeguard: bool,
    }
}

section! {
    /// `[transport]`: QUIC connections.
    struct Transport in "transport", flags "" {
        /// QUIC connections kept open; the least recently used is closed beyond it.
        max_connections: usize,
        /// Idle connection timeout; unset, it is derived from cluster size and probe interval.
        idle_timeout: Option<Dur>,
        /// Largest stream message accepted (push-pull state grows with the cluster).
        max_stream_size: usize,
        /// How long a peer may take to send one stream message before it is refused.
        stream_timeout: Dur,
        /// Streams one peer may have open towards this node at once.
        max_streams_per_peer: u32,
        /// Memory one peer's stream messages may hold at once (bytes).
        max_held_per_peer: usize,
        /// Memory all peers' stream messages may hold at once (bytes).
        max_held_total: usize,
        /// Datagrams waiting for the protocol at most; beyond, they are dropped (counted).
        max_queued_datagrams: usize,
    }
}

/// Every section, in the file's order.
pub(crate) fn all_keys() -> impl Iterator<Item = &'static Key> {
    General::KEYS
        .iter()
        .chain(Tls::KEYS)
        .chain(Swim::KEYS)
        .chain(Transport::KEYS)
}

/// The section names of the file.
pub(crate) const SECTIONS: [&str; 3] = ["tls", "swim", "transport"];

/// The default QUIC address: every interface, memberlist's port.
const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 7946);

/// A `ClusterConfig` with every library default, to read them from.
pub(crate) fn library_defaults() -> ClusterConfig {
    let no_files = TlsFiles {
        ca: PathBuf::new(),
        cert: PathBuf::new(),
        key: PathBuf::new(),
    };
    ClusterConfig::new("", DEFAULT_BIND, no_files)
}

impl Default for General {
    fn default() -> Self {
        Self {
            name: None,
            bind: DEFAULT_BIND.to_string(),
            advertise: None,
            seeds: Vec::new(),
            cluster_name: swim_core::Config::default().cluster_name,
            admin: "127.0.0.1:9946".into(),
        }
    }
}

/// Both directions of the `[swim]` section ↔ `swim_core::Config` mapping, from one field list.
macro_rules! swim_fields {
    ($($field:ident),* $(,)?) => {
        impl Swim {
            /// The section as `config` holds it.
            pub(crate) fn from_core(config: &swim_core::Config) -> Self {
                Self { $( $field: config.$field.into(), )* }
            }

            /// Writes the section into `config`.
            pub(crate) fn apply(&self, config: &mut swim_core::Config) {
                $( config.$field = self.$field.into(); )*
            }
        }
    };
}

swim_fields!(
    probe_interval,
    probe_timeout,
    indirect_checks,
    suspicion_mult,
    suspicion_max_timeout_mult,
    suspicion_confirmations,
    gossip_interval,
    gossip_fanout,
    retransmit_mult,
    push_pull_interval,
    tombstone_timeout,
    reconnect_timeout,
    reconnect_interval,
    max_dead_members,
    lifeguard,
);

impl Default for Swim {
    fn default() -> Self {
        // swim-net's defaults for the protocol are swim-core's.
        Self::from_core(&library_defaults().swim)
    }
}

impl Default for Transport {
    fn default() -> Self {
        Self::from_cluster(&library_defaults())
    }
}

impl Transport {
    /// The section as `c` holds it.
    fn from_cluster(c: &ClusterConfig) -> Self {
        Self {
            max_connections: c.max_connections,
            idle_timeout: c.idle_timeout.map(Dur),
            max_stream_size: c.max_stream_size,
            stream_timeout: Dur(c.stream_timeout),
            max_streams_per_peer: c.max_streams_per_peer,
            max_held_per_peer: c.max_held_per_peer,
            max_held_total: c.max_held_total,
            max_queued_datagrams: c.max_queued_datagrams,
        }
    }

    /// Writes the section into `c`.
    pub(crate) fn apply(&self, c: &mut ClusterConfig) {
        c.max_connections = self.max_connections;
        c.idle_timeout = self.idle_timeout.map(Into::into);
        c.max_stream_size = self.max_stream_size;
        c.stream_timeout = self.stream_timeout.into();
        c.max_streams_per_peer = self.max_streams_per_peer;
        c.max_held_per_peer = self.max_held_per_peer;
        c.max_held_total = self.max_held_total;
        c.max_queued_datagrams = self.max_queued_datagrams;
    }
}

/// The default of `key` as `--help` shows it; `None` when it has none (required, or derived).
pub(crate) fn default_text(key: &Key) -> Option<String> {
    let table = defaults_table();
    let value = match key.section {
        "" => table.get(key.field),
        s => table.get(s)?.get(key.field),
    }?;
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) if a.is_empty() => return None,
        toml::Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    })
}

/// Every default, as the file would write it.
pub(crate) fn defaults_table() -> toml::Table {
    let mut t = toml::Table::try_from(General::default()).expect("BUG! defaults serialize");
    let mut section = |name: &str, value: toml::Table| {
        t.insert(name.into(), toml::Value::Table(value));
    };
    section("tls", toml::Table::try_from(Tls::default()).expect("BUG!"));
    section(
        "swim",
        toml::Table::try_from(Swim::default()).expect("BUG!"),
    );
    section(
        "transport",
        toml::Table::try_from(Transport::default()).expect("BUG!"),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_and_variable_is_distinct_and_every_key_documented() {
        let keys: Vec<_> = all_keys().collect();
        let mut flags: Vec<_> = keys.iter().map(|k| k.flag()).collect();
        flags.sort();
        flags.dedup();
        assert_eq!(flags.len(), keys.len(), "two keys share a flag");
        for k in &keys {
            assert!(!k.doc().is_empty(), "{} has no doc", k.path());
        }
        let tls_ca = keys.iter().find(|k| k.path() == "tls.ca").unwrap();
        assert_eq!(
            (tls_ca.flag(), tls_ca.env()),
            ("tls-ca".into(), "SWIM_TLS_CA".into())
        );
        let probe = keys
            .iter()
            .find(|k| k.path() == "swim.probe_interval")
            .unwrap();
        assert_eq!(probe.env(), "SWIM_PROBE_INTERVAL");
    }

    #[test]
    fn defaults_are_the_libraries_defaults() {
        let core = swim_core::Config::default();
        let mut round_trip = core.clone();
        Swim::default().apply(&mut round_trip);
        assert_eq!(round_trip, core);
        let probe = all_keys().find(|k| k.field == "probe_interval").unwrap();
        assert_eq!(default_text(probe).as_deref(), Some("1s"));
        let name = all_keys().find(|k| k.field == "name").unwrap();
        assert_eq!(default_text(name), None, "required: no default");
        let max = all_keys().find(|k| k.field == "max_connections").unwrap();
        assert_eq!(default_text(max).as_deref(), Some("256"));
    }

    #[test]
    fn the_example_file_sets_every_key() {
        let text = include_str!("../node.example.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        for k in all_keys() {
            let found = match k.section {
                "" => table.get(k.field),
                s => table.get(s).and_then(|t| t.get(k.field)),
            };
            let commented = text.contains(&format!("# {} =", k.field));
            assert!(
                found.is_some() || commented,
                "node.example.toml does not show {}",
                k.path()
            );
        }
    }
}
