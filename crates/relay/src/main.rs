//! chat-alias-relay: the MSRP switch of Chat Alias (RFC 4975, RFC 7701 behaviour).
//! This version runs the control listener (joins and leaves from the Kamailio module) and the
//! participant registry, and listens on the MSRP port.
use clap::Parser;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod control;
mod registry;

#[derive(Parser, Debug)]
#[command(
    name = "chat-alias-relay",
    version,
    about = "MSRP switch for Chat Alias conferences"
)]
struct Args {
    /// Unix socket on which the Kamailio module sends joins and leaves.
    #[arg(long, default_value = "/run/chat-alias/relay.sock")]
    control: PathBuf,
    /// MSRP listening address (TCP).
    #[arg(long, default_value = "127.0.0.1:2855")]
    listen: SocketAddr,
    /// Host put in the SDP answer and in a=path (default: the listening IP).
    #[arg(long)]
    advertise: Option<String>,
    /// Largest message accepted (a=max-size), in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_size: u64,
}

/// State shared by the listeners.
pub struct Shared {
    pub registry: Mutex<registry::Registry>,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub max_size: u64,
}

impl Shared {
    /// The host as it appears in an MSRP URI (IPv6 literals in brackets).
    pub fn uri_host(&self) -> String {
        if self.advertise_host.contains(':') {
            format!("[{}]", self.advertise_host)
        } else {
            self.advertise_host.clone()
        }
    }

    /// A participant left: its MSRP connection is closed by the data plane (next issue).
    pub fn on_leave(&self, _session: &str) {}
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let msrp = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen for MSRP on {}: {e}", args.listen))?;
    // A stale socket file from a previous run would make bind fail; nobody else owns this path.
    if args.control.exists() {
        std::fs::remove_file(&args.control)
            .map_err(|e| format!("cannot remove stale {}: {e}", args.control.display()))?;
    }
    if let Some(dir) = args.control.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let control_listener = tokio::net::UnixListener::bind(&args.control).map_err(|e| {
        format!(
            "cannot listen on control socket {}: {e}",
            args.control.display()
        )
    })?;
    let shared = Arc::new(Shared {
        registry: Mutex::new(registry::Registry::default()),
        advertise_host: args
            .advertise
            .clone()
            .unwrap_or_else(|| args.listen.ip().to_string()),
        advertise_port: args.listen.port(),
        max_size: args.max_size,
    });
    tracing::info!(control = %args.control.display(), msrp = %args.listen, "relay ready");
    let control_task = tokio::spawn(control::serve(control_listener, shared.clone()));
    let msrp_task = tokio::spawn(async move {
        // The MSRP data plane arrives with the next issue; until then connections are accepted and
        // closed so clients see a clean TCP close rather than a hang.
        loop {
            if let Ok((s, peer)) = msrp.accept().await {
                tracing::debug!(%peer, "MSRP connection (data plane not enabled)");
                drop(s);
            }
        }
    });
    shutdown_signal().await;
    tracing::info!("shutting down");
    control_task.abort();
    msrp_task.abort();
    let _ = std::fs::remove_file(&args.control);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
