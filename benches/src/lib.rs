//! Benchmarks for swim: see `benches/README.md`.

use std::time::Duration;

/// CPU time (user + system) of this whole process, from `/proc/self/stat` (fields 14 and
/// 15, in USER_HZ ticks, which Linux fixes at 100 per second for user space): how
/// `quic_scenario` and `foca_udp` measure their members, the same way for both.
pub fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')' the state (field 3) comes first, so utime and stime are at 11 and 12.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(11) + field(12)) * 10)
}

/// The tokio runtime a runner puts all its members on (`--runtime`): the same choice for
/// `quic_scenario` and `foca_udp`, so a side-by-side compares like with like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// Two worker threads (the figures in benches/README.md before 2026-12-07 evening).
    Multi,
    /// One thread, as `swim-node run` runs a member.
    Current,
}

impl Runtime {
    /// Its name on the command line (clap's, so the two cannot differ), for the runners'
    /// JSON.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .expect("every runtime is a --runtime value")
            .get_name()
            .to_owned()
    }

    /// Builds the runtime, with I/O and timers.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Runtime::Multi => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
            Runtime::Current => tokio::runtime::Builder::new_current_thread(),
        };
        builder.enable_all().build()
    }
}
