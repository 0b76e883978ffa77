//! `swim-node`: the binary. A thin main: parse the subcommand, hand over to its module.

mod simulate;

use clap::{Parser, Subcommand};

/// swim: a SWIM + Lifeguard failure detector and membership service.
#[derive(Parser, Debug)]
#[command(name = "swim-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the deterministic simulator: crash members in a virtual cluster and report
    /// detection latency, false positives and bandwidth.
    Simulate(simulate::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
