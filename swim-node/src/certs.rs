//! `swim-node cert ca|node`: rcgen-made development certificates, PEM, keys mode 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use swim_net::dev_certs::{self, DevCa};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Create a cluster CA: DIR/ca.pem and DIR/ca.key (valid ten years).
    Ca {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "swim cluster CA")]
        common_name: String,
    },
    /// Create a node certificate signed by the CA in --ca: OUT/NAME.pem, OUT/NAME.key and a
    /// copy of ca.pem (valid one year; the node name is its DNS subject alternative name).
    Node {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca: PathBuf,
        /// Node name (a DNS name, e.g. swim-0 or swim-0.swim.default.svc).
        #[arg(long)]
        name: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// A CA and a certificate for each name, kept if already there: OUT/ca/ and
    /// OUT/NAME/ per name. Run again, it changes nothing, so a one-shot container may run it
    /// on every start (deploy/compose.yaml).
    Cluster {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Node names, comma-separated (e.g. swim-1,swim-2,swim-3).
        #[arg(long, value_delimiter = ',', required = true)]
        names: Vec<String>,
    },
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ca { out, common_name } => make_ca(&out, &common_name)?,
        Command::Node { ca, name, out } => make_node(&ca, &name, &out)?,
        Command::Cluster { out, names } => {
            for name in &names {
                check_name(name)?;
            }
            let ca = out.join("ca");
            if ca.join("ca.pem").exists() {
                println!("kept the CA in {}", ca.display());
            } else {
                make_ca(&ca, "swim cluster CA")?;
            }
            for name in &names {
                let dir = out.join(name);
                if dir.join(format!("{name}.pem")).exists() {
                    println!("kept {}", dir.display());
                } else {
                    make_node(&ca, name, &dir)?;
                }
            }
        }
    }
    Ok(())
}

fn make_ca(out: &Path, common_name: &str) -> anyhow::Result<()> {
    let ca = DevCa::new(common_name)?;
    let pair = ca.cert_and_key();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write(&out.join("ca.pem"), &pair.cert_pem)?;
    dev_certs::write_secret(&out.join("ca.key"), &pair.key_pem)
        .with_context(|| format!("writing {}", out.join("ca.key").display()))?;
    println!(
        "wrote {} and {}",
        out.join("ca.pem").display(),
        out.join("ca.key").display()
    );
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || rustls_name_ok(name).is_err() {
        anyhow::bail!("--name {name:?} is not a valid DNS name");
    }
    Ok(())
}

fn make_node(ca: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    check_name(name)?;
    let cert = read(&ca.join("ca.pem"))?;
    let key = read(&ca.join("ca.key"))?;
    let ca = DevCa::load(&cert, &key)?;
    let node = ca.issue(name)?;
    let files = dev_certs::write_files(out, &cert, name, &node)?;
    println!(
        "wrote {}, {} and {}",
        files.cert.display(),
        files.key.display(),
        files.ca.display()
    );
    Ok(())
}

fn rustls_name_ok(name: &str) -> Result<(), ()> {
    let ok = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
