//! `chat-alias-bench`: the fan-out and memory parts of `make bench`, the raw forwarder they are
//! compared with, and the table that combines every part's rows. See crates/bench/README.md.
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod fanout;
mod forward;
mod frame;
mod procfs;
mod stats;
mod sut;
mod table;

#[derive(Parser)]
#[command(
    name = "chat-alias-bench",
    version,
    about = "Benchmarks of Chat Alias (make bench)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Reads every DIR/*.jsonl, prints one markdown table grouped by section, writes
    /// DIR/bench.json and LATEST/latest.json + LATEST/latest.md.
    Table {
        dir: PathBuf,
        /// Where latest.json and latest.md go.
        #[arg(long, default_value = "target/bench")]
        latest_dir: PathBuf,
    },
    /// Fan-out through the relay against the raw forwarder: for each P/S configuration, P
    /// participants in one conference, S of them sending 1 KiB CPIM messages, at most 16 in
    /// flight each; deliveries/s, latency p50/p99, CPU per delivery; rows into --out.
    Fanout(FanoutArgs),
    /// The raw forwarder (the fan-out baseline): every request frame, found by its MSRP frame
    /// boundaries only, is written unchanged to every other connection; nothing is answered.
    Forward {
        #[arg(long, default_value = "127.0.0.1:2855")]
        listen: SocketAddr,
        /// Largest frame in bytes; a connection sending a larger one is closed.
        #[arg(long, default_value_t = 1 << 20)]
        max_frame: usize,
        /// Bytes that may wait for one recipient; frames beyond are dropped for it.
        #[arg(long, default_value_t = 4 << 20)]
        queue_bytes: usize,
    },
}

#[derive(clap::Args)]
struct FanoutArgs {
    /// The relay binary.
    #[arg(long, default_value = "target/release/chat-alias-relay")]
    relay: PathBuf,
    /// Where the rows go (JSON Lines; replaced).
    #[arg(long)]
    out: PathBuf,
    /// PARTICIPANTS/SENDERS, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2/1,10/1,10/10,100/1")]
    configs: Vec<fanout::Config>,
    /// Runs of each configuration against each of relay and forwarder (medians are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// A further argument for the relay (repeatable), e.g. --relay-arg=--queue-bytes=8388608.
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// Development run: 1 repeat of 1 s after 0.3 s of warm-up (also CHAT_ALIAS_BENCH_QUICK=1).
    #[arg(long)]
    quick: bool,
}

fn fanout_cmd(a: FanoutArgs) -> Result<(), String> {
    let quick = a.quick || std::env::var("CHAT_ALIAS_BENCH_QUICK").is_ok_and(|v| v == "1");
    if !a.relay.exists() {
        return Err(format!("{} not found: run make build", a.relay.display()));
    }
    let secs = |s: f64, what: &str| {
        std::time::Duration::try_from_secs_f64(s).map_err(|_| format!("bad --{what}: {s}"))
    };
    let plan = fanout::Plan {
        relay: a.relay,
        relay_args: a.relay_args,
        configs: a.configs,
        repeats: if quick { 1 } else { a.repeats.max(1) },
        warmup: if quick {
            secs(0.3, "warmup")?
        } else {
            secs(a.warmup, "warmup")?
        },
        seconds: if quick {
            secs(1.0, "seconds")?
        } else {
            secs(a.seconds, "seconds")?
        },
    };
    let mut sink = fanout::RowSink::create(&a.out, false)?;
    fanout::run(&plan, &mut sink)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Table { dir, latest_dir } => table::run(&dir, &latest_dir),
        Cmd::Fanout(a) => fanout_cmd(a),
        Cmd::Forward {
            listen,
            max_frame,
            queue_bytes,
        } => forward::run(
            listen,
            forward::Options {
                max_frame,
                queue_bytes,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-alias-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
