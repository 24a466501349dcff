//! `chat-alias-bench`: the fan-out and memory parts of `make bench`, the raw forwarder they are
//! compared with, and the table that combines every part's rows. See crates/bench/README.md.
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod forward;
mod frame;
#[allow(dead_code)] // the measuring parts come next
mod stats;
#[allow(dead_code)]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Table { dir, latest_dir } => table::run(&dir, &latest_dir),
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
