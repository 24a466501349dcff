//! chat-alias-relay: the MSRP switch of Chat Alias (RFC 4975, RFC 6135, RFC 7701 behaviour).
//!
//! - `control`: the focus's joins and leaves over a Unix socket (docs/control-protocol.md);
//! - `focus`: NICKNAME questions to the focus (Kamailio's jsonrpcs datagram socket);
//! - `switch`: the room logic (binding, routing, re-chunking, congestion), sans-IO;
//! - `connection` / `outbox`: the tokio drivers of one MSRP connection;
//! - `metrics`: counters and the Prometheus endpoint.
use clap::Parser;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod connection;
mod control;
mod focus;
mod metrics;
mod outbox;
mod registry;
mod switch;

use metrics::Metrics;
use outbox::Outbox;
use switch::Switch;

/// Parses `500ms`, `5s`, `2m`, `1.5` (seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

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
    /// Largest message accepted (a=max-size), in bytes; larger ones get 413.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_size: u64,
    /// A connection that binds no session within this time is closed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    bind_timeout: Duration,
    /// A message with no chunk for this long is aborted (recipients get `#`).
    #[arg(long, default_value = "540s", value_parser = parse_duration)]
    chunk_timeout: Duration,
    /// Bytes of message data that may wait for one recipient; data beyond is dropped and the
    /// recipient is marked congested.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    queue_bytes: usize,
    /// A recipient congested for this long is disconnected.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    congestion_timeout: Duration,
    /// On SIGTERM/SIGINT, how long to wait for messages in flight before closing sessions.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Answer NICKNAME requests (RFC 7701 §7); with `false` they get 501.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    nicknames: bool,
    /// Kamailio's jsonrpcs Unix datagram socket: NICKNAME requests are decided by the focus
    /// (`chat_alias.nickname`). Without it, NICKNAME gets 403.
    #[arg(long, value_name = "PATH")]
    focus_rpc: Option<PathBuf>,
    /// How long the focus has to answer a NICKNAME question (then 500).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    focus_timeout: Duration,
}

/// State shared by the listeners.
pub struct Shared {
    pub switch: Mutex<Switch<Outbox>>,
    pub metrics: Arc<Metrics>,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub max_size: u64,
    pub queue_bytes: usize,
    /// Questions for the focus link (None: no `--focus-rpc`).
    pub focus: Option<tokio::sync::mpsc::UnboundedSender<switch::NicknameAsk>>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn next_conn_id(&self) -> switch::ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// A participant left: the registry forgets it and its MSRP connection is closed (the
    /// connection's writer flushes what is queued for at most half a second).
    pub fn on_leave(&self, session: &str) -> Option<registry::Participant> {
        self.switch.lock().leave(session)
    }

    /// Carries out the switch's actions: questions go to the focus link (which never blocks; a
    /// question that cannot be handed over is answered as failed at once).
    pub fn dispatch(&self, sw: &mut Switch<Outbox>) {
        while let Some(action) = sw.poll_action() {
            match action {
                switch::Action::AskFocus(ask) => {
                    let id = ask.id;
                    let sent = match &self.focus {
                        Some(tx) => tx.send(ask).is_ok(),
                        None => false,
                    };
                    if !sent {
                        sw.handle_focus_answer(
                            std::time::Instant::now(),
                            id,
                            switch::FocusOutcome::Failed("no focus link".into()),
                        );
                    }
                }
            }
        }
    }
}

/// The host as it appears in an MSRP URI (IPv6 literals in brackets).
fn uri_host(h: &str) -> String {
    if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]")
    } else {
        h.to_string()
    }
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
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
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
    let advertise_host = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.ip().to_string());
    let metrics = Metrics::new();
    let cfg = switch::Config {
        host: uri_host(&advertise_host),
        port: args.listen.port(),
        max_size: args.max_size,
        bind_timeout: args.bind_timeout,
        chunk_timeout: args.chunk_timeout,
        congestion_timeout: args.congestion_timeout,
        queue_bytes: args.queue_bytes,
        nicknames: args.nicknames,
        focus: args.focus_rpc.is_some(),
        focus_timeout: args.focus_timeout,
    };
    let reply_path = focus::reply_path(&args.control);
    let (focus_tx, focus_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        switch: Mutex::new(Switch::new(cfg, switch::os_ids(), metrics.clone())),
        metrics: metrics.clone(),
        advertise_host,
        advertise_port: args.listen.port(),
        max_size: args.max_size,
        queue_bytes: args.queue_bytes,
        focus: args.focus_rpc.as_ref().map(|_| focus_tx),
        next_conn: AtomicU64::new(1),
    });
    let focus_task = args.focus_rpc.clone().map(|path| {
        tokio::spawn(focus::run(
            focus_rx,
            path,
            reply_path.clone(),
            shared.clone(),
        ))
    });
    tracing::info!(control = %args.control.display(), msrp = %args.listen, metrics = ?args.metrics, focus_rpc = ?args.focus_rpc, max_size = args.max_size, "relay ready");
    let control_task = tokio::spawn(control::serve(control_listener, shared.clone()));
    let accept_shared = shared.clone();
    let accept_task = tokio::spawn(async move {
        loop {
            match msrp.accept().await {
                Ok((s, peer)) => {
                    Metrics::add(&accept_shared.metrics.connections_accepted, 1);
                    tokio::spawn(connection::serve(s, peer, accept_shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MSRP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    let timer_task = tokio::spawn(timers(shared.clone()));
    let metrics_task = metrics_listener.map(|l| {
        let s = shared.clone();
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
            let gauges = s.switch.lock().gauges();
            s.metrics.render(&gauges)
        });
        tokio::spawn(metrics::serve(l, render))
    });
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections");
    accept_task.abort();
    // Let messages in flight finish (and their frames be written), within the drain timeout.
    let deadline = tokio::time::Instant::now() + args.drain_timeout;
    loop {
        let in_flight = shared.switch.lock().in_flight();
        let queued = shared.metrics.queued();
        if (in_flight == 0 && queued == 0) || tokio::time::Instant::now() >= deadline {
            if in_flight > 0 {
                tracing::warn!(in_flight, "drain timeout: aborting messages in flight");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.switch.lock().close_all();
    // Connections close within their grace period.
    let deadline =
        tokio::time::Instant::now() + connection::CLOSE_GRACE + Duration::from_millis(200);
    while shared.metrics.queued() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    control_task.abort();
    timer_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(t) = focus_task {
        t.abort();
        let _ = t.await;
        if std::fs::symlink_metadata(&reply_path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) {
            let _ = std::fs::remove_file(&reply_path);
        }
    }
    let _ = std::fs::remove_file(&args.control);
    tracing::info!("relay stopped");
    Ok(())
}

/// Runs the switch's timers: sleeps until its next deadline, but at least every 200 ms (so that
/// a deadline set meanwhile, and congested recipients that drained, are seen promptly).
async fn timers(shared: Arc<Shared>) {
    loop {
        let now = std::time::Instant::now();
        let cap = now + Duration::from_millis(200);
        let next = shared
            .switch
            .lock()
            .poll_timeout()
            .map_or(cap, |t| t.min(cap));
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let mut sw = shared.switch.lock();
        sw.handle_timeout(std::time::Instant::now());
        shared.dispatch(&mut sw);
    }
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
