//! `swim-node`: the binary. A thin main: parse the subcommand, set up logging, hand over to
//! the subcommand's module.

mod admin;
mod certs;
mod config;
mod demo;
mod health;
mod members;
mod plot;
mod run;
mod settings;
mod simulate;
mod telemetry;

use clap::{Parser, Subcommand};

/// mimalloc, not the system allocator: glibc keeps freed heap memory in each thread's arena,
/// so a burst (a peer's refused flood of stream data) stayed in the node's RSS long after it
/// was freed; mimalloc returns freed pages to the OS within milliseconds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// swim: a SWIM + Lifeguard failure detector and membership service over QUIC + mutual TLS.
#[derive(Parser, Debug)]
#[command(name = "swim-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format of `run`: text (one line per event, coloured only on a terminal) or json
    /// (one object per line, for log shippers).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SWIM_LOG_FORMAT"
    )]
    log_format: telemetry::LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a cluster member (config file, SWIM_* environment, flags).
    Run(Box<run::Args>),
    /// Make development certificates: a cluster CA, node certificates.
    #[command(subcommand)]
    Cert(certs::Command),
    /// Print a running node's view of the cluster.
    Members(members::Args),
    /// Exit 0 if a running node answers live (or, with --ready, has joined); else non-zero
    /// with one line saying why. For container HEALTHCHECKs and Kubernetes exec probes.
    Health(health::Args),
    /// A local cluster over real QUIC + mutual TLS; one member is killed and detected.
    Demo(demo::Args),
    /// Run the deterministic simulator: crash members in a virtual cluster and report
    /// detection latency, false positives and bandwidth.
    Simulate(simulate::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Cert(cmd) => certs::run(cmd),
        Command::Members(args) => members::run(args),
        Command::Health(args) => health::run(args),
        Command::Run(args) => single_thread_runtime().and_then(|rt| {
            telemetry::init_tracing(cli.log_format);
            rt.block_on(run::run(*args))
        }),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<run::NameYielded>().is_some() {
                std::process::ExitCode::from(run::NameYielded::EXIT_CODE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// One member's runtime: a few packets a second need no second thread, and every task on
/// one thread wakes the next without waking another thread (a 32-member cluster of
/// processes: 15-20 % less CPU per process than two worker threads, and the default
/// multi-thread runtime starts one worker per core of the host).
fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The demo's runtime: several members in one process.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
