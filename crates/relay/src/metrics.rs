//! Counters of the relay and their Prometheus text rendering (`--metrics ADDR`, `GET /metrics`).
//!
//! Counters are plain atomics updated by the switch and the outboxes; gauges that the switch
//! owns (participants, bound sessions, connections, messages in flight) are read from it at
//! scrape time and passed in as a [`Gauges`] snapshot.
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Why a message (or a copy of one) was not delivered in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// A data frame did not fit the recipient's queue (`--queue-bytes`).
    Congestion,
    /// The message exceeded `--max-size`.
    MaxSize,
    /// No chunk for `--chunk-timeout`.
    ChunkTimeout,
    /// The sender left or disconnected before the message ended.
    SenderGone,
    /// The recipient left or disconnected before the message ended.
    RecipientGone,
    /// The message was refused (403/404/415/428/…), or sent with `Failure-Report: no` and refused.
    Refused,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Congestion => "congestion",
            DropReason::MaxSize => "max_size",
            DropReason::ChunkTimeout => "chunk_timeout",
            DropReason::SenderGone => "sender_gone",
            DropReason::RecipientGone => "recipient_gone",
            DropReason::Refused => "refused",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_accepted: AtomicU64,
    /// Connections closed at accept because `--max-connections` were open.
    pub refused_max_connections: AtomicU64,
    /// Connections closed at accept because `--max-unbound` had bound no session yet (only when
    /// none could be evicted, i.e. `--max-unbound 0`).
    pub refused_max_unbound: AtomicU64,
    /// Connections closed at accept because `--max-unbound-per-address` is 0.
    pub refused_per_address: AtomicU64,
    /// Unbound connections closed to make room for a new one, by the cap reached.
    pub evicted_max_connections: AtomicU64,
    pub evicted_max_unbound: AtomicU64,
    pub evicted_per_address: AtomicU64,
    /// Connections closed because they sent no byte within `--first-byte-timeout`.
    pub first_byte_timeouts: AtomicU64,
    /// Messages whose first chunk arrived from a sender.
    pub messages_in: AtomicU64,
    /// Copies delivered in full (their last frame queued) to a recipient.
    pub messages_out: AtomicU64,
    /// Body bytes received in SEND requests.
    pub bytes_in: AtomicU64,
    /// Body bytes queued towards recipients.
    pub bytes_out: AtomicU64,
    /// Frames (data and control) written to sockets.
    pub frames_out: AtomicU64,
    /// Bytes held by all outboxes, not yet written: each frame's own bytes, and each chunk body
    /// once however many recipients' frames share it (`--max-queued-bytes` bounds it).
    pub queued_bytes: AtomicUsize,
    /// Data frames refused because the relay-wide queued bytes were at `--max-queued-bytes`.
    pub global_queue_full: AtomicU64,
    /// Connections closed because their recipient stayed congested.
    pub congestion_disconnects: AtomicU64,
    /// NICKNAME questions sent to the focus.
    pub focus_requests: AtomicU64,
    /// NICKNAME questions answered 500: timeout, focus unreachable, unusable or unexpected answer.
    pub focus_failures: AtomicU64,
    /// Control connections closed because the peer's uid is not allowed.
    pub control_refused: AtomicU64,
    drops: Mutex<BTreeMap<DropReason, u64>>,
    refusals: Mutex<BTreeMap<u16, u64>>,
}

/// Values the switch owns, sampled at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub connections: usize,
    /// Open connections that have bound no session yet.
    pub unbound: usize,
    pub participants: usize,
    pub conferences: usize,
    pub bound_sessions: usize,
    pub messages_in_flight: usize,
    pub congested: usize,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// The eviction counter for `why`.
    pub fn evicted(&self, why: crate::switch::Eviction) -> &AtomicU64 {
        use crate::switch::Eviction;
        match why {
            Eviction::MaxConnections => &self.evicted_max_connections,
            Eviction::MaxUnbound => &self.evicted_max_unbound,
            Eviction::PerAddress => &self.evicted_per_address,
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: DropReason) {
        *self.drops.lock().entry(why).or_default() += 1;
    }

    pub fn refusal(&self, code: u16) {
        *self.refusals.lock().entry(code).or_default() += 1;
    }

    pub fn drops(&self, why: DropReason) -> u64 {
        self.drops.lock().get(&why).copied().unwrap_or(0)
    }

    pub fn refusals(&self, code: u16) -> u64 {
        self.refusals.lock().get(&code).copied().unwrap_or(0)
    }

    pub fn queued(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut s = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        one(
            "chat_alias_relay_connections",
            "gauge",
            "Open MSRP connections.",
            g.connections as u64,
        );
        one(
            "chat_alias_relay_connections_accepted_total",
            "counter",
            "MSRP connections accepted since start.",
            c(&self.connections_accepted),
        );
        one(
            "chat_alias_relay_unbound_connections",
            "gauge",
            "Open MSRP connections that have bound no session yet.",
            g.unbound as u64,
        );
        one(
            "chat_alias_relay_participants",
            "gauge",
            "Participants registered by the focus.",
            g.participants as u64,
        );
        one(
            "chat_alias_relay_conferences",
            "gauge",
            "Conferences with at least one registered participant.",
            g.conferences as u64,
        );
        one(
            "chat_alias_relay_bound_sessions",
            "gauge",
            "MSRP sessions bound to a connection.",
            g.bound_sessions as u64,
        );
        one(
            "chat_alias_relay_messages_in_flight",
            "gauge",
            "Messages whose last chunk has not arrived yet.",
            g.messages_in_flight as u64,
        );
        one(
            "chat_alias_relay_congested_sessions",
            "gauge",
            "Recipients currently marked congested.",
            g.congested as u64,
        );
        one(
            "chat_alias_relay_messages_in_total",
            "counter",
            "Messages received from senders (first chunks).",
            c(&self.messages_in),
        );
        one(
            "chat_alias_relay_messages_out_total",
            "counter",
            "Message copies delivered in full to recipients.",
            c(&self.messages_out),
        );
        one(
            "chat_alias_relay_bytes_in_total",
            "counter",
            "SEND body bytes received.",
            c(&self.bytes_in),
        );
        one(
            "chat_alias_relay_bytes_out_total",
            "counter",
            "SEND body bytes queued to recipients.",
            c(&self.bytes_out),
        );
        one(
            "chat_alias_relay_frames_out_total",
            "counter",
            "MSRP frames written to sockets.",
            c(&self.frames_out),
        );
        one(
            "chat_alias_relay_queued_bytes",
            "gauge",
            "Bytes held by all outboxes (a chunk shared by many recipients counted once).",
            self.queued() as u64,
        );
        one(
            "chat_alias_relay_global_queue_full_total",
            "counter",
            "Data frames refused because the relay-wide queued bytes were at --max-queued-bytes.",
            c(&self.global_queue_full),
        );
        one(
            "chat_alias_relay_congestion_disconnects_total",
            "counter",
            "Connections closed because they stayed congested.",
            c(&self.congestion_disconnects),
        );
        one(
            "chat_alias_relay_focus_requests_total",
            "counter",
            "NICKNAME questions sent to the focus.",
            c(&self.focus_requests),
        );
        one(
            "chat_alias_relay_focus_failures_total",
            "counter",
            "NICKNAME questions answered 500 (focus timeout, unreachable, unusable answer).",
            c(&self.focus_failures),
        );
        one(
            "chat_alias_relay_control_refused_total",
            "counter",
            "Control connections closed because the peer's uid is not allowed.",
            c(&self.control_refused),
        );
        one(
            "chat_alias_relay_first_byte_timeouts_total",
            "counter",
            "MSRP connections closed because they sent no byte in time.",
            c(&self.first_byte_timeouts),
        );
        let _ = writeln!(
            s,
            "# HELP chat_alias_relay_connections_refused_total MSRP connections closed at accept, by the limit reached.\n# TYPE chat_alias_relay_connections_refused_total counter\nchat_alias_relay_connections_refused_total{{reason=\"max_connections\"}} {}\nchat_alias_relay_connections_refused_total{{reason=\"max_unbound\"}} {}\nchat_alias_relay_connections_refused_total{{reason=\"max_unbound_per_address\"}} {}",
            c(&self.refused_max_connections),
            c(&self.refused_max_unbound),
            c(&self.refused_per_address)
        );
        let _ = writeln!(
            s,
            "# HELP chat_alias_relay_unbound_evicted_total Unbound MSRP connections closed to make room for a new one, by the limit reached.\n# TYPE chat_alias_relay_unbound_evicted_total counter\nchat_alias_relay_unbound_evicted_total{{reason=\"max_connections\"}} {}\nchat_alias_relay_unbound_evicted_total{{reason=\"max_unbound\"}} {}\nchat_alias_relay_unbound_evicted_total{{reason=\"max_unbound_per_address\"}} {}",
            c(&self.evicted_max_connections),
            c(&self.evicted_max_unbound),
            c(&self.evicted_per_address)
        );
        let _ = writeln!(
            s,
            "# HELP chat_alias_relay_drops_total Messages or copies not delivered in full, by reason.\n# TYPE chat_alias_relay_drops_total counter"
        );
        let drops = self.drops.lock().clone();
        for why in [
            DropReason::Congestion,
            DropReason::MaxSize,
            DropReason::ChunkTimeout,
            DropReason::SenderGone,
            DropReason::RecipientGone,
            DropReason::Refused,
        ] {
            let _ = writeln!(
                s,
                "chat_alias_relay_drops_total{{reason=\"{}\"}} {}",
                why.label(),
                drops.get(&why).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "# HELP chat_alias_relay_refusals_total Requests refused, by MSRP status code.\n# TYPE chat_alias_relay_refusals_total counter"
        );
        for (code, n) in self.refusals.lock().iter() {
            let _ = writeln!(s, "chat_alias_relay_refusals_total{{code=\"{code}\"}} {n}");
        }
        s
    }
}

/// Serves `GET /metrics` (any other path: 404) with a minimal HTTP/1.1 responder: one request per
/// connection, `Connection: close`.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => req.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut parts = line.split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, body) = if method == "GET" && (path == "/metrics" || path == "/") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        let m = Metrics::new();
        Metrics::add(&m.messages_in, 3);
        m.dropped(DropReason::Congestion);
        m.refusal(403);
        m.refusal(403);
        Metrics::add(&m.refused_max_unbound, 4);
        let text = m.render(&Gauges {
            participants: 2,
            unbound: 5,
            ..Default::default()
        });
        assert!(
            text.contains("chat_alias_relay_connections_refused_total{reason=\"max_unbound\"} 4\n")
        );
        assert!(text.contains(
            "chat_alias_relay_connections_refused_total{reason=\"max_connections\"} 0\n"
        ));
        assert!(text.contains("chat_alias_relay_unbound_connections 5\n"));
        assert!(text.contains("chat_alias_relay_messages_in_total 3\n"));
        assert!(text.contains("chat_alias_relay_participants 2\n"));
        assert!(text.contains("chat_alias_relay_drops_total{reason=\"congestion\"} 1\n"));
        assert!(text.contains("chat_alias_relay_refusals_total{code=\"403\"} 2\n"));
        assert!(text.contains("# TYPE chat_alias_relay_queued_bytes gauge\n"));
    }
}
