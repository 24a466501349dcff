//! A connection's outbox: whole MSRP frames waiting to be written, and the writer task draining it.
//!
//! The queue is an unbounded channel of whole frames (so frames of different senders never
//! interleave on the wire) plus a queued-bytes counter. Data frames that would take the counter
//! over `--queue-bytes` are refused at once ([`Pushed::Dropped`]): the sender's task never waits
//! for a slow reader. Control frames (responses, REPORTs, aborts) bypass that limit, up to a hard
//! cap past which the connection is closed (a peer that sends requests but never reads its
//! responses cannot grow our memory without bound).
use crate::metrics::Metrics;
use crate::switch::{CloseReason, FrameClass, Outlet, Pushed};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};

/// How the connection should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseMode {
    Open,
    /// Write what is queued (for at most the grace period), then close.
    Graceful,
    /// Close now, dropping what is queued.
    Hard,
}

struct Inner {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: AtomicUsize,
    limit: usize,
    hard_cap: usize,
    close: watch::Sender<CloseMode>,
    metrics: Arc<Metrics>,
}

impl Inner {
    fn sub(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        self.metrics.queued_bytes.fetch_sub(n, Ordering::Relaxed);
    }

    fn close(&self, mode: CloseMode) {
        self.close.send_if_modified(|m| {
            if mode > *m {
                *m = mode;
                true
            } else {
                false
            }
        });
    }
}

/// The switch's handle on a connection's outbox.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

/// The writer's end.
pub struct OutboxRx {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    inner: Arc<Inner>,
}

impl Outbox {
    /// `limit`: the queued-bytes limit for data frames; control frames may go up to
    /// `limit + control_slack`.
    pub fn new(limit: usize, control_slack: usize, metrics: Arc<Metrics>) -> (Outbox, OutboxRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (close, _) = watch::channel(CloseMode::Open);
        let inner = Arc::new(Inner {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            hard_cap: limit.saturating_add(control_slack),
            close,
            metrics,
        });
        (
            Outbox {
                inner: inner.clone(),
            },
            OutboxRx { rx, inner },
        )
    }

    /// Watches how the connection should end (the reader stops reading when it is not `Open`).
    pub fn subscribe(&self) -> watch::Receiver<CloseMode> {
        self.inner.close.subscribe()
    }

    pub fn close_mode(&self) -> CloseMode {
        *self.inner.close.borrow()
    }
}

impl Outlet for Outbox {
    fn push(&self, frame: Vec<u8>, class: FrameClass) -> Pushed {
        let i = &self.inner;
        if *i.close.borrow() != CloseMode::Open {
            return Pushed::Dropped;
        }
        let len = frame.len();
        let queued = i.queued.load(Ordering::Relaxed);
        match class {
            FrameClass::Data if queued.saturating_add(len) > i.limit => return Pushed::Dropped,
            FrameClass::Control if queued.saturating_add(len) > i.hard_cap => {
                tracing::warn!(queued, "control frames not read by the peer; closing");
                i.close(CloseMode::Hard);
                return Pushed::Dropped;
            }
            _ => {}
        }
        i.queued.fetch_add(len, Ordering::Relaxed);
        i.metrics.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if i.tx.send(frame).is_err() {
            i.sub(len);
            return Pushed::Dropped;
        }
        Pushed::Queued
    }

    fn close(&self, why: CloseReason) {
        let mode = match why {
            // The peer is not reading, or framing is gone: nothing queued is worth waiting for.
            // Nothing was asked of an unbound connection that could be waiting to be written.
            CloseReason::Congested
            | CloseReason::Overflow
            | CloseReason::Evicted
            | CloseReason::FirstByteTimeout => CloseMode::Hard,
            _ => CloseMode::Graceful,
        };
        self.inner.close(mode);
    }

    fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }
}

/// Resolves when the close mode becomes `Hard`.
async fn hard(close: &mut watch::Receiver<CloseMode>) {
    loop {
        if *close.borrow_and_update() == CloseMode::Hard {
            return;
        }
        if close.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Writes queued frames until the outbox is closed. A graceful close writes what is already
/// queued for at most `grace`; a hard close stops at once (even in the middle of a blocked write).
pub async fn run_writer(mut w: OwnedWriteHalf, out: OutboxRx, grace: Duration) {
    let OutboxRx { mut rx, inner } = out;
    let mut close = inner.close.subscribe();
    let mut deadline: Option<tokio::time::Instant> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    loop {
        let mode = *close.borrow_and_update();
        match mode {
            CloseMode::Hard => break,
            CloseMode::Graceful if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ => {}
        }
        let frame = if deadline.is_some() {
            // Closing: write what is already queued, wait for nothing new.
            match rx.try_recv() {
                Ok(f) => f,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                f = rx.recv() => match f {
                    Some(f) => f,
                    None => break,
                },
                r = close.changed() => {
                    if r.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        let len = frame.len();
        let until = deadline.unwrap_or_else(far);
        let mut hard_close = inner.close.subscribe();
        let ok = tokio::select! {
            r = w.write_all(&frame) => r.is_ok(),
            _ = tokio::time::sleep_until(until) => false,
            _ = hard(&mut hard_close) => false,
        };
        inner.sub(len);
        if !ok {
            break;
        }
        Metrics::add(&inner.metrics.frames_out, 1);
    }
    // Whatever is left is never written: take it off the counters.
    inner.close(CloseMode::Hard);
    rx.close();
    while let Ok(f) = rx.try_recv() {
        inner.sub(f.len());
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), w.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_respect_the_limit_control_frames_bypass_it() {
        let m = Metrics::new();
        let (o, mut rx) = Outbox::new(100, 50, m.clone());
        assert_eq!(o.push(vec![0; 60], FrameClass::Data), Pushed::Queued);
        assert_eq!(o.push(vec![0; 60], FrameClass::Data), Pushed::Dropped);
        assert_eq!(o.push(vec![0; 60], FrameClass::Control), Pushed::Queued);
        assert_eq!(o.queued(), 120);
        assert_eq!(m.queued(), 120);
        // Past the hard cap the connection is closed.
        assert_eq!(o.push(vec![0; 60], FrameClass::Control), Pushed::Dropped);
        assert_eq!(o.close_mode(), CloseMode::Hard);
        assert_eq!(o.push(vec![0; 1], FrameClass::Control), Pushed::Dropped);
        assert_eq!(rx.rx.try_recv().map(|f| f.len()), Ok(60));
    }

    #[test]
    fn close_only_escalates() {
        let (o, _rx) = Outbox::new(100, 50, Metrics::new());
        o.close(CloseReason::Left);
        assert_eq!(o.close_mode(), CloseMode::Graceful);
        o.close(CloseReason::Congested);
        assert_eq!(o.close_mode(), CloseMode::Hard);
        o.close(CloseReason::Left);
        assert_eq!(o.close_mode(), CloseMode::Hard);
    }
}
