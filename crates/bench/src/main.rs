//! `chat-alias-bench`: the fan-out and memory parts of `make bench`, the raw forwarder they are
//! compared with, and the table that combines every part's rows. See crates/bench/README.md.
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod fanout;
mod forward;
mod frame;
mod memory;
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
    /// The relay's memory rows alone: RSS per idle bound participant, peak RSS growth while one
    /// large message crosses in chunks.
    Memory(MemoryOnlyArgs),
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
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// A further argument for the relay (repeatable), e.g. --relay-arg=--queue-bytes=8388608.
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// Development run: 1 repeat of 1 s after 0.3 s of warm-up, memory rows with 500 idle
    /// participants and a 64 MiB message (also CHAT_ALIAS_BENCH_QUICK=1).
    #[arg(long)]
    quick: bool,
    /// Leave out the memory rows.
    #[arg(long)]
    no_memory: bool,
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(clap::Args)]
struct MemoryArgs {
    /// Idle bound participants for the RSS-per-participant row.
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// Size of the large message, MiB of content.
    #[arg(long, default_value_t = 1024)]
    big_mib: u64,
    /// Chunk size of the large message, KiB.
    #[arg(long, default_value_t = 1024)]
    chunk_kib: u64,
}

#[derive(clap::Args)]
struct MemoryOnlyArgs {
    /// The relay binary.
    #[arg(long, default_value = "target/release/chat-alias-relay")]
    relay: PathBuf,
    /// Where the rows go (JSON Lines; replaced).
    #[arg(long)]
    out: PathBuf,
    /// Runs of each measure (medians are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// A further argument for the relay (repeatable).
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// Development run: 1 repeat, 500 idle participants, a 64 MiB message.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    memory: MemoryArgs,
}

fn quick_env() -> bool {
    std::env::var("CHAT_ALIAS_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn memory_plan(
    relay: PathBuf,
    relay_args: Vec<String>,
    repeats: usize,
    quick: bool,
    m: &MemoryArgs,
) -> Result<memory::Plan, String> {
    if m.idle == 0 || m.big_mib == 0 || m.chunk_kib == 0 {
        return Err("--idle, --big-mib and --chunk-kib must be positive".into());
    }
    Ok(memory::Plan {
        relay,
        relay_args,
        idle: if quick { m.idle.min(500) } else { m.idle },
        big: if quick {
            m.big_mib.min(64) << 20
        } else {
            m.big_mib << 20
        },
        chunk: m.chunk_kib << 10,
        repeats: if quick { 1 } else { repeats.max(1) },
    })
}

fn memory_cmd(a: MemoryOnlyArgs) -> Result<(), String> {
    if !a.relay.exists() {
        return Err(format!("{} not found: run make build", a.relay.display()));
    }
    let quick = a.quick || quick_env();
    let plan = memory_plan(a.relay, a.relay_args, a.repeats, quick, &a.memory)?;
    let mut sink = fanout::RowSink::create(&a.out, false)?;
    memory::run(&plan, &mut sink)
}

fn fanout_cmd(a: FanoutArgs) -> Result<(), String> {
    let quick = a.quick || quick_env();
    if !a.relay.exists() {
        return Err(format!("{} not found: run make build", a.relay.display()));
    }
    let secs = |s: f64, what: &str| {
        std::time::Duration::try_from_secs_f64(s).map_err(|_| format!("bad --{what}: {s}"))
    };
    let mem = memory_plan(
        a.relay.clone(),
        a.relay_args.clone(),
        a.repeats,
        quick,
        &a.memory,
    )?;
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
    fanout::run(&plan, &mut sink)?;
    if !a.no_memory {
        memory::run(&mem, &mut sink)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Table { dir, latest_dir } => table::run(&dir, &latest_dir),
        Cmd::Fanout(a) => fanout_cmd(a),
        Cmd::Memory(a) => memory_cmd(a),
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
