//! `chat-alias-bench`: the fan-out and memory parts of `make bench`, the raw forwarder they are
//! compared with, and the table that combines every part's rows. See crates/bench/README.md.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Table { dir, latest_dir } => table::run(&dir, &latest_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-alias-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
