//! The one config loader of `swim-node run`: the defaults, then a TOML file, then `SWIM_*`
//! environment variables, then command-line flags (each later source overrides the earlier),
//! ending in validation. Every key, flag and variable comes from `settings`; every error
//! names the key and the problem; nothing is bound before everything passes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use swim_net::{ClusterConfig, NetError, TlsFile, TlsFiles};

use crate::settings::{self, parse_duration, General, Key, Kind, Swim, Transport, SECTIONS};

/// A config problem, naming the key as written in the file (or, for a file that is not
/// TOML, the file and the line).
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub key: String,
    pub problem: String,
}

/// `key` of a file that did not parse: "FILE line L, column C".
const SYNTAX: &str = "syntax:";

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key.strip_prefix(SYNTAX) {
            Some(place) => write!(f, "config file {place}: {}", self.problem),
            None => write!(f, "config key `{}`: {}", self.key, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A TOML syntax error, placed by line and column.
fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let place = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{} line {line}, column {column}", path.display())
        }
        None => path.display().to_string(),
    };
    err(&format!("{SYNTAX}{place}"), e.message().trim().to_string())
}

/// TLS paths written relative in the file are relative to the file's directory (where they
/// were written), not to wherever the node was started; flags and variables keep theirs.
fn tls_paths_from(file: &mut toml::Table, config: &Path) {
    let Some(toml::Value::Table(tls)) = file.get_mut("tls") else {
        return;
    };
    let base = config.parent().unwrap_or(Path::new(""));
    for (_, value) in tls.iter_mut() {
        if let toml::Value::String(path) = value {
            if Path::new(path.as_str()).is_relative() {
                let joined = base.join(path.as_str()).to_string_lossy().into_owned();
                *path = joined;
            }
        }
    }
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Values given as flags or `SWIM_*` variables (a flag wins), for the keys of some sections.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    given: Vec<(&'static Key, Vec<String>)>,
}

impl Overrides {
    /// The flags of `keys` (with their variables if `env`), for a clap command.
    pub(crate) fn args(keys: impl Iterator<Item = &'static Key>, env: bool) -> Vec<Arg> {
        keys.map(|k| {
            let mut help = format!("{} [key: {}]", k.doc(), k.path());
            if let Some(d) = settings::default_text(k) {
                help.push_str(&format!(" [default: {d}]"));
            }
            let mut arg = Arg::new(k.path())
                .long(k.flag())
                .help(help)
                .action(ArgAction::Set)
                .value_name(match k.kind {
                    Kind::Duration => "DURATION",
                    Kind::Count => "N",
                    Kind::Switch => "BOOL",
                    Kind::List => "LIST",
                    Kind::Text => "VALUE",
                });
            if k.kind == Kind::List {
                arg = arg.value_delimiter(',');
            }
            if env {
                arg = arg.env(k.env());
            }
            arg
        })
        .collect()
    }

    /// What the user gave for `keys` (flags, or variables when the command reads them).
    pub(crate) fn from_matches(keys: impl Iterator<Item = &'static Key>, m: &ArgMatches) -> Self {
        let given = keys
            .filter(|k| {
                matches!(
                    m.value_source(&k.path()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .filter_map(|k| {
                let values = m.get_many::<String>(&k.path())?;
                Some((k, values.cloned().collect()))
            })
            .collect();
        Self { given }
    }

    /// The overrides as a TOML table, each value checked against its key's kind.
    fn table(&self) -> Result<toml::Table, ConfigError> {
        let mut table = toml::Table::new();
        for (key, values) in &self.given {
            let value = if key.kind == Kind::List {
                toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect())
            } else {
                let raw = values.first().map(String::as_str).unwrap_or_default();
                typed(key, raw)?
            };
            insert(&mut table, key, value);
        }
        Ok(table)
    }
}

/// `--config` and every key of the file as a flag with its `SWIM_*` variable.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunFlags {
    pub(crate) config: Option<PathBuf>,
    pub(crate) overrides: Overrides,
}

impl clap::FromArgMatches for RunFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            config: m.get_one::<PathBuf>("config").cloned(),
            overrides: Overrides::from_matches(settings::all_keys(), m),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for RunFlags {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "TOML config file (see swim-node/node.example.toml). Every key can also be \
                     set by a flag or a SWIM_* environment variable, which win over the file.",
                ),
        )
        .args(Overrides::args(settings::all_keys(), true))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// `simulate`'s protocol flags: the `[swim]` keys, without their variables (a simulation is
/// not configured by the environment of a node that may run beside it).
#[derive(Debug, Default, Clone)]
pub(crate) struct SwimFlags(pub(crate) Overrides);

impl clap::FromArgMatches for SwimFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(Overrides::from_matches(Swim::KEYS.iter(), m)))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for SwimFlags {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(Overrides::args(Swim::KEYS.iter(), false))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub cluster: ClusterConfig,
    pub seeds: Vec<String>,
    pub admin: SocketAddr,
}

/// Loads `path` (if any) over the defaults, applies the overrides, validates everything.
pub(crate) fn load(path: Option<&Path>, overrides: &Overrides) -> Result<NodeConfig, ConfigError> {
    let (general, tls, swim, transport) = sections(merged(path, overrides)?)?;
    resolve(general, tls, swim, transport)
}

/// The protocol settings of `simulate`: the `[swim]` section of `path` (the file `run`
/// takes, every key of it checked as `run` checks it) over the defaults, with the overrides
/// applied, and what swim-net sets that is not a key (its datagram size, packets framed
/// without a version byte) as a node of `run` has them. The rest of the file (name,
/// addresses, TLS files, transport) describes one process, not the simulated cluster: its
/// keys' names and types are checked, nothing more (no name or TLS file required, no
/// transport limit checked), and its files are not opened.
pub(crate) fn swim_with(
    path: Option<&Path>,
    overrides: &Overrides,
) -> Result<swim_core::Config, ConfigError> {
    let (general, _, swim, _) = sections(merged(path, overrides)?)?;
    let mut config = settings::library_defaults().swim;
    config.framing = swim_core::Framing::Session;
    config.cluster_name = general.cluster_name;
    swim.apply(&mut config);
    config.validate().map_err(core_error)?;
    Ok(config)
}

/// The defaults, then the file (if any), then the overrides, each value checked.
fn merged(path: Option<&Path>, overrides: &Overrides) -> Result<toml::Table, ConfigError> {
    let mut table = settings::defaults_table();
    if let Some(p) = path {
        let text = std::fs::read_to_string(p)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", p.display())))?;
        let mut file: toml::Table =
            toml::from_str(&text).map_err(|e| syntax_error(p, &text, &e))?;
        check_file(&file)?;
        tls_paths_from(&mut file, p);
        merge(&mut table, file);
    }
    merge(&mut table, overrides.table()?);
    Ok(table)
}

/// A value given as text for `key`, as the TOML value of its kind.
fn typed(key: &Key, raw: &str) -> Result<toml::Value, ConfigError> {
    Ok(match key.kind {
        Kind::Text | Kind::List => toml::Value::String(raw.to_string()),
        Kind::Duration => {
            parse_duration(raw).map_err(|e| err(&key.path(), e))?;
            toml::Value::String(raw.to_string())
        }
        Kind::Count => {
            let n: u32 = raw
                .parse()
                .map_err(|_| err(&key.path(), format!("{raw:?} is not a whole number")))?;
            toml::Value::Integer(i64::from(n))
        }
        Kind::Switch => toml::Value::Boolean(
            raw.parse()
                .map_err(|_| err(&key.path(), format!("{raw:?} is not true or false")))?,
        ),
    })
}

/// Every key of the file exists and holds a value of its kind.
fn check_file(file: &toml::Table) -> Result<(), ConfigError> {
    let find = |section: &str, field: &str| {
        settings::all_keys().find(|k| k.section == section && k.field == field)
    };
    let check = |key: &Key, value: &toml::Value| -> Result<(), ConfigError> {
        let ok = match (key.kind, value) {
            (Kind::Text, toml::Value::String(_)) => true,
            (Kind::Duration, toml::Value::String(s)) => {
                parse_duration(s).map_err(|e| err(&key.path(), e))?;
                true
            }
            (Kind::Count, toml::Value::Integer(n)) => u32::try_from(*n).is_ok(),
            (Kind::Switch, toml::Value::Boolean(_)) => true,
            (Kind::List, toml::Value::Array(a)) => a.iter().all(toml::Value::is_str),
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let wanted = match key.kind {
            Kind::Text => "a string",
            Kind::Duration => "a duration string like \"500ms\"",
            Kind::Count => "a whole number",
            Kind::Switch => "true or false",
            Kind::List => "a list of strings",
        };
        Err(err(
            &key.path(),
            format!("expected {wanted}, found {value}"),
        ))
    };
    for (name, value) in file {
        match (value, SECTIONS.contains(&name.as_str())) {
            (toml::Value::Table(section), true) => {
                for (field, value) in section {
                    let key = find(name, field)
                        .ok_or_else(|| err(&format!("{name}.{field}"), "unknown key"))?;
                    check(key, value)?;
                }
            }
            (_, true) => return Err(err(name, "expected a [section]")),
            (value, false) => {
                let key = find("", name).ok_or_else(|| err(name, "unknown key"))?;
                check(key, value)?;
            }
        }
    }
    Ok(())
}

fn insert(table: &mut toml::Table, key: &Key, value: toml::Value) {
    let target = match key.section {
        "" => table,
        s => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("BUG! sections are tables"),
    };
    target.insert(key.field.to_string(), value);
}

/// Writes `over` into `base`, section by section.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (name, value) in over {
        match (base.get_mut(&name), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => b.extend(o),
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

type Sections = (General, settings::Tls, Swim, Transport);

/// The merged table as the four sections (every value was checked on its way in).
fn sections(mut table: toml::Table) -> Result<Sections, ConfigError> {
    let mut take = |name: &str| {
        table
            .remove(name)
            .unwrap_or(toml::Value::Table(Default::default()))
    };
    let tls = take("tls");
    let swim = take("swim");
    let transport = take("transport");
    let bug = |section: &'static str| {
        move |e: toml::de::Error| err(section, format!("BUG! a checked value did not load: {e}"))
    };
    Ok((
        toml::Value::Table(table)
            .try_into()
            .map_err(bug("(top level)"))?,
        tls.try_into().map_err(bug("tls"))?,
        swim.try_into().map_err(bug("swim"))?,
        transport.try_into().map_err(bug("transport"))?,
    ))
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| err(key, format!("{value:?} is not an IP:port address")))
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))
}

/// The key of a `swim_core::Config` field.
fn core_error(e: swim_core::ConfigError) -> ConfigError {
    match e {
        swim_core::ConfigError::OutOfBounds { field, reason } => {
            let key = settings::all_keys()
                .filter(|k| k.field == field)
                .min_by_key(|k| k.section != "swim")
                .map_or_else(|| format!("swim.{field}"), Key::path);
            err(&key, reason)
        }
        other => err("swim", other.to_string()),
    }
}

/// The key of a `ClusterConfig` setting or TLS file swim-net refused.
pub(crate) fn net_error(e: NetError) -> ConfigError {
    match e {
        NetError::Core(swim_core::Error::Config(e)) => core_error(e),
        NetError::Setting { field, reason } => {
            let key = settings::all_keys()
                .find(|k| k.field == field)
                .map_or_else(|| field.to_string(), Key::path);
            err(&key, reason)
        }
        NetError::TlsFile { file, .. } => {
            let key = match file {
                TlsFile::Ca => "tls.ca",
                TlsFile::Cert => "tls.cert",
                _ => "tls.key",
            };
            err(key, e.to_string())
        }
        other => err("(settings)", other.to_string()),
    }
}

fn resolve(
    general: General,
    tls: settings::Tls,
    swim: Swim,
    transport: Transport,
) -> Result<NodeConfig, ConfigError> {
    let name = general.name.ok_or_else(|| err("name", "is required"))?;
    let bind = addr("bind", &general.bind)?;
    let advertise = match general.advertise.as_deref() {
        Some(a) => Some(addr("advertise", a)?),
        None if bind.ip().is_unspecified() => {
            return Err(err("advertise", format!("is required when bind is {bind}")))
        }
        None => None,
    };
    let admin = addr("admin", &general.admin)?;
    for s in &general.seeds {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(err("seeds", format!("{s:?} is not host:port"))),
        }
    }
    let file = |key: &str, path: Option<PathBuf>| -> Result<PathBuf, ConfigError> {
        let path = path.ok_or_else(|| err(key, "is required"))?;
        readable(key, &path)?;
        Ok(path)
    };
    let files = TlsFiles {
        ca: file("tls.ca", tls.ca)?,
        cert: file("tls.cert", tls.cert)?,
        key: file("tls.key", tls.key)?,
    };
    let mut c = ClusterConfig::new(name, bind, files);
    c.advertise = advertise;
    c.swim.cluster_name = general.cluster_name;
    swim.apply(&mut c.swim);
    transport.apply(&mut c);
    c.validate().map_err(net_error)?;
    Ok(NodeConfig {
        cluster: c,
        seeds: general.seeds,
        admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args as _, FromArgMatches as _};
    use std::time::Duration;

    fn flags(argv: &[&str]) -> RunFlags {
        let cmd = RunFlags::augment_args(Command::new("run").no_binary_name(true));
        RunFlags::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
    }

    /// A config file naming `n` with readable TLS files, plus `extra` lines.
    fn file(dir: &Path, extra: &str) -> PathBuf {
        for f in ["ca.pem", "n.pem", "n.key"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let text = format!(
            "name = \"n\"\nbind = \"127.0.0.1:7000\"\n{extra}\n[tls]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            dir.join("ca.pem"),
            dir.join("n.pem"),
            dir.join("n.key")
        );
        let path = dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_flag_overrides_the_file_which_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let plain = file(dir.path(), "");
        let c = load(Some(&plain), &flags(&[]).overrides).unwrap();
        assert_eq!(c.cluster.swim.probe_interval, Duration::from_secs(1));
        assert_eq!(c.admin, "127.0.0.1:9946".parse().unwrap());

        let set = file(
            dir.path(),
            "seeds = [\"a:1\"]\n[swim]\nprobe_interval = \"2s\"",
        );
        let c = load(Some(&set), &flags(&[]).overrides).unwrap();
        assert_eq!(c.cluster.swim.probe_interval, Duration::from_secs(2));
        assert_eq!(c.seeds, ["a:1"]);

        let argv = [
            "--probe-interval",
            "3s",
            "--seeds",
            "b:2,c:3",
            "--lifeguard",
            "false",
        ];
        let c = load(Some(&set), &flags(&argv).overrides).unwrap();
        assert_eq!(c.cluster.swim.probe_interval, Duration::from_secs(3));
        assert_eq!(c.seeds, ["b:2", "c:3"]);
        assert!(!c.cluster.swim.lifeguard);
        assert_eq!(
            c.cluster.swim.probe_timeout,
            Duration::from_millis(500),
            "keys nobody set keep their defaults"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, "name = \"n\"\n[swim\nprobe_interval = \"1s\"\n").unwrap();
        let e = load(Some(&path), &flags(&[]).overrides).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("config file {} line 2, column ", path.display())),
            "{shown}"
        );
        assert!(shown.contains("unclosed table"), "{shown}");
    }

    #[test]
    fn relative_tls_paths_in_the_file_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(conf.join("tls")).unwrap();
        for f in ["ca.pem", "n.pem", "n.key"] {
            std::fs::write(conf.join("tls").join(f), "").unwrap();
        }
        let path = conf.join("node.toml");
        std::fs::write(
            &path,
            "name = \"n\"\nbind = \"127.0.0.1:7000\"\n[tls]\nca = \"tls/ca.pem\"\ncert = \"tls/n.pem\"\nkey = \"tls/n.key\"\n",
        )
        .unwrap();
        // The test's working directory is not `conf`: only the file's directory finds them.
        let c = load(Some(&path), &flags(&[]).overrides).unwrap();
        assert_eq!(c.cluster.tls.ca, conf.join("tls/ca.pem"));
        assert_eq!(c.cluster.tls.key, conf.join("tls/n.key"));
        // A flag stays relative to where the node was started.
        let e = load(Some(&path), &flags(&["--tls-ca", "tls/ca.pem"]).overrides).unwrap_err();
        assert_eq!(e.key, "tls.ca", "{e}");
    }

    #[test]
    fn every_refusal_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("surprise = 1", &[][..], "surprise"),
            ("[swim]\nwhat = 1", &[][..], "swim.what"),
            (
                "[swim]\nindirect_checks = \"three\"",
                &[][..],
                "swim.indirect_checks",
            ),
            (
                "[swim]\nprobe_timeout = \"soon\"",
                &[][..],
                "swim.probe_timeout",
            ),
            (
                "[transport]\nmax_connections = 1",
                &[][..],
                "transport.max_connections",
            ),
            ("", &["--gossip-fanout=-1"][..], "swim.gossip_fanout"),
            ("", &["--probe-timeout", "5s"][..], "swim.probe_timeout"),
            ("", &["--idle-timeout", "1ms"][..], "transport.idle_timeout"),
            ("", &["--bind", "0.0.0.0:1"][..], "advertise"),
            ("cluster_name = \"\"", &[][..], "cluster_name"),
            ("seeds = 5", &[][..], "seeds"),
            ("[swim]\nlifeguard = \"yes\"", &[][..], "swim.lifeguard"),
        ];
        for (extra, argv, key) in cases {
            let path = file(dir.path(), extra);
            let e = load(Some(&path), &flags(argv).overrides).unwrap_err();
            assert_eq!(e.key, key, "{extra:?} {argv:?}: {e}");
        }
    }
}
