//! chat-alias-relay: the MSRP switch of Chat Alias (RFC 4975, RFC 6135, RFC 7701 behaviour).
//!
//! - `control`: the focus's joins and leaves over a Unix socket (docs/control-protocol.md);
//! - `focus_socket`: the datagram link to the module's focus socket, which carries the switch's
//!   questions (NICKNAME, registry resync, convergence checks);
//! - `switch`: the room logic (binding, routing, re-chunking, congestion, NICKNAME, keeping the
//!   registry in step with the module), sans-IO;
//! - `connection` / `outbox`: the tokio drivers of one MSRP connection;
//! - `metrics`: counters and the Prometheus endpoint.
//!
//! "The focus" in this crate is the Kamailio module (the conference focus, RFC 4353): it tells
//! the relay about joins and leaves on the control socket, and answers the relay's questions on
//! its focus socket.
#![forbid(unsafe_code)]
use clap::Parser;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod connection;
mod control;
mod focus_socket;
mod outbox;

// The sans-IO core lives in the library target (src/lib.rs) so that fuzz targets can drive it.
use chat_alias_relay::{frame, ids, metrics, registry, switch};

use metrics::Metrics;
use outbox::Outbox;
use switch::Switch;

/// The default `--max-size` (and `a=max-size` in the SDP answer): 16 MiB + 64 KiB.
///
/// The contract is that messages of at least 16 MiB are admitted. The limit applies to the SEND
/// body, i.e. the whole `message/cpim` wrapper: the CPIM header block and the encapsulated MIME
/// header block (each at most 16 KiB, [`switch::MAX_CPIM_PREFIX`]) come on top of the content.
/// 64 KiB of headroom covers both blocks and their blank lines, so a 16 MiB content fits.
pub const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024 + 64 * 1024;
const _: () =
    assert!(DEFAULT_MAX_SIZE >= 16 * 1024 * 1024 + 2 * switch::MAX_CPIM_PREFIX as u64 + 8);

/// The longest duration a flag accepts. Every timer is `Instant + duration`; a bound keeps that
/// addition from overflowing (a panic) whatever the command line says.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `500ms`, `5s`, `2m`, `1.5` (seconds); at most [`MAX_DURATION`] (one day).
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
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "duration {s:?} too long (at most {}s, one day)",
            MAX_DURATION.as_secs()
        ));
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
    /// Largest message accepted (a=max-size), in bytes, CPIM wrapper included; larger ones get
    /// 413. The default is 16 MiB of content plus 64 KiB for the CPIM and MIME headers.
    #[arg(long, default_value_t = DEFAULT_MAX_SIZE)]
    max_size: u64,
    /// Open MSRP connections at most; more are accepted and closed at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// MSRP connections that have bound no session yet, at most; a new one beyond closes the
    /// oldest unbound connection (one that sent nothing first).
    #[arg(long, default_value_t = 256)]
    max_unbound: usize,
    /// Unbound MSRP connections from one source address, at most; a new one beyond closes the
    /// oldest unbound connection of that address.
    #[arg(long, default_value_t = 32)]
    max_unbound_per_address: usize,
    /// A connection that sends no byte within this time is closed.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    first_byte_timeout: Duration,
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
    /// Bytes all outboxes may hold together (a chunk shared by many recipients counts once);
    /// a data frame beyond is dropped for its recipient as if its own queue were full.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_queued_bytes: usize,
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
    /// The module's focus socket (Unix datagram, modparam `focus_socket`): NICKNAME requests are
    /// decided by the focus (`chat_alias.nickname`) and the registry is rebuilt from it after a
    /// restart. Without it, NICKNAME gets 403. `--focus-rpc` is the old name.
    #[arg(long = "focus", alias = "focus-rpc", value_name = "PATH")]
    focus_socket: Option<PathBuf>,
    /// How long the focus has to answer a NICKNAME question (then 500).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    focus_timeout: Duration,
    /// Worker threads serving MSRP connections (default: the machine's cores). Each connection's
    /// frames are handled in order by one task at a time, so every recipient still sees each
    /// sender's messages in the order sent. 1 runs everything on the main thread.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// A uid (besides the relay's own) whose processes may use the control socket; repeatable.
    /// Peers of any other uid are closed unanswered.
    #[arg(long, value_name = "UID")]
    control_allow_uid: Vec<u32>,
}

/// State shared by the listeners.
pub struct Shared {
    pub switch: Mutex<Switch<Outbox>>,
    pub metrics: Arc<Metrics>,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub max_size: u64,
    pub queue_bytes: usize,
    /// The relay-wide limit on queued bytes (`--max-queued-bytes`).
    pub max_queued_bytes: usize,
    /// Questions for the link to the module's focus socket (None: no `--focus`).
    pub focus_link: Option<tokio::sync::mpsc::UnboundedSender<focus_socket::Ask>>,
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

    /// Rebuilds the registry from the module's focus socket (docs/control-protocol.md,
    /// "Rebuilding the relay").
    pub fn request_resync(&self) {
        let mut sw = self.switch.lock();
        sw.handle_resync_request(std::time::Instant::now());
        self.dispatch(&mut sw);
    }

    /// Carries out the switch's actions: questions go to the focus link (which never blocks; a
    /// question that cannot be handed over is reported unsent at once).
    pub fn dispatch(&self, sw: &mut Switch<Outbox>) {
        while let Some(action) = sw.poll_action() {
            let ask = match action {
                switch::Action::AskFocus(ask) => (ask.id, ask.question()),
                switch::Action::QueryFocus { id, question } => (id, question),
            };
            let id = ask.0;
            let sent = match &self.focus_link {
                Some(tx) => tx.send(ask).is_ok(),
                None => false,
            };
            if !sent {
                sw.handle_focus_unreachable(std::time::Instant::now(), id, "no focus link".into());
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
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads).thread_name("msrp");
        b
    };
    let rt = match builder.enable_all().build() {
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

/// `--threads` by default: the cores this process may run on.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The switch's configuration and the shared state, from the command line.
fn build_shared(
    args: &Args,
    advertise_host: String,
    focus_link: Option<tokio::sync::mpsc::UnboundedSender<focus_socket::Ask>>,
) -> Shared {
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
        focus_socket: focus_link.is_some(),
        focus_timeout: args.focus_timeout,
        max_connections: args.max_connections,
        max_unbound: args.max_unbound,
        max_unbound_per_address: args.max_unbound_per_address,
        first_byte_timeout: args.first_byte_timeout,
    };
    Shared {
        switch: Mutex::new(Switch::new(cfg, ids::thread_ids(), metrics.clone())),
        metrics,
        advertise_host,
        advertise_port: args.listen.port(),
        max_size: args.max_size,
        queue_bytes: args.queue_bytes,
        max_queued_bytes: args.max_queued_bytes,
        focus_link,
        next_conn: AtomicU64::new(1),
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
    let (control_listener, own_uid) = control::bind_private(&args.control)?;
    let mut allowed_uids = args.control_allow_uid.clone();
    allowed_uids.push(own_uid);
    let advertise_host = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.ip().to_string());
    let reply_path = focus_socket::reply_path(&args.control);
    let (focus_tx, focus_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(build_shared(
        &args,
        advertise_host,
        args.focus_socket.as_ref().map(|_| focus_tx),
    ));
    let focus_task = args.focus_socket.clone().map(|path| {
        tokio::spawn(focus_socket::run(
            focus_rx,
            path,
            reply_path.clone(),
            shared.clone(),
        ))
    });
    // Rebuild the registry from the focus's alias table (a restarted relay knows nobody). Asked
    // again on the first control connection: Kamailio may start after the relay.
    shared.request_resync();
    tracing::info!(control = %args.control.display(), msrp = %args.listen, threads = args.threads.map_or_else(default_threads, usize::from), metrics = ?args.metrics, focus_socket = ?args.focus_socket, max_size = args.max_size, max_connections = args.max_connections, max_unbound = args.max_unbound, max_unbound_per_address = args.max_unbound_per_address, "relay ready");
    // The control socket is served on its own thread: joins and leaves are answered within the
    // module's relay timeout even while this runtime is busy fanning messages out (the switch's
    // lock is only ever held for one read's worth of work).
    let control_stop = control::spawn(control_listener, shared.clone(), allowed_uids)
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    let accept_shared = shared.clone();
    let accept_task = tokio::spawn(async move {
        loop {
            match msrp.accept().await {
                Ok((s, peer)) => {
                    connection::accept(&accept_shared, s, peer);
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
    drop(control_stop);
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

#[cfg(test)]
mod test_support {
    use super::*;

    /// A switch configuration for unit tests (the defaults of the command line, on a test host).
    pub fn config() -> switch::Config {
        switch::Config::example()
    }

    pub fn shared(cfg: switch::Config) -> Shared {
        let metrics = Metrics::new();
        Shared {
            advertise_host: cfg.host.clone(),
            advertise_port: cfg.port,
            max_size: cfg.max_size,
            queue_bytes: cfg.queue_bytes,
            max_queued_bytes: usize::MAX,
            switch: Mutex::new(Switch::new(cfg, ids::thread_ids(), metrics.clone())),
            metrics,
            focus_link: None,
            next_conn: AtomicU64::new(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::control::{self as proto_control, Join, Request};

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chat-alias-relay").chain(extra.iter().copied()))
    }

    /// Finding: the default a=max-size admits a 16 MiB content inside its CPIM wrapper, and the
    /// grant the module puts in the SDP answer carries it.
    #[test]
    fn default_max_size_is_16_mib_plus_the_cpim_headroom_and_is_granted() {
        let a = args(&[]).unwrap();
        assert_eq!(a.max_size, 16 * 1024 * 1024 + 64 * 1024);
        assert_eq!(a.max_size, DEFAULT_MAX_SIZE);
        assert_eq!((a.max_connections, a.max_unbound), (4096, 256));
        let shared = build_shared(&a, "192.0.2.10".into(), None);
        assert_eq!(shared.switch.lock().config().max_size, DEFAULT_MAX_SIZE);
        let r = control::handle(
            &shared,
            Request::Join(Join {
                id: 1,
                version: proto_control::VERSION,
                session: "0123456789abcdef0123".into(),
                conference: "sip:lounge@im.example.net".into(),
                uri: "sip:anonymous@anonymous.invalid".into(),
                display_name: None,
                anonymous: true,
                peer_path: vec!["msrp://192.0.2.1:7654/abc;tcp".into()],
                accept_wrapped_types: vec![],
                chatroom: vec![],
                private_messages_allowed: false,
            }),
        );
        assert_eq!(r.grant.unwrap().max_size, DEFAULT_MAX_SIZE);
        let a = args(&["--max-size", "100000"]).unwrap();
        assert_eq!(a.max_size, 100_000);
    }

    /// Finding: durations too large for `Instant + Duration` are refused at parse time.
    #[test]
    fn durations_are_bounded_at_parse_time() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("24h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("86400"), Ok(MAX_DURATION));
        for big in [
            "86401",
            "24.1h",
            "1441m",
            "18446744073709551615",
            "99999999999999999999999999h",
            "1e300",
        ] {
            let e = parse_duration(big).unwrap_err();
            assert!(e.contains(big), "{e}");
        }
        assert!(parse_duration("86401").unwrap_err().contains("too long"));
        for flag in [
            "--bind-timeout",
            "--chunk-timeout",
            "--congestion-timeout",
            "--drain-timeout",
            "--focus-timeout",
            "--first-byte-timeout",
        ] {
            let e = args(&[flag, "18446744073709551615s"]).unwrap_err();
            assert!(e.to_string().contains("too long"), "{flag}: {e}");
            assert!(args(&[flag, "1d"]).is_err(), "{flag}");
            assert!(args(&[flag, "2h"]).is_ok(), "{flag}");
        }
        // Every timer of the switch can be armed with the longest value.
        let now = std::time::Instant::now();
        assert!(now.checked_add(MAX_DURATION).is_some());
    }
}
