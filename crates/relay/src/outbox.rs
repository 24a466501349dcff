//! A connection's outbox: whole MSRP frames waiting to be written, and the writer task draining it.
//!
//! The queue is an unbounded channel of whole frames (so frames of different senders never
//! interleave on the wire) plus a queued-bytes counter. Data frames that would take the counter
//! over `--queue-bytes` are refused at once ([`Pushed::Dropped`]): the sender's task never waits
//! for a slow reader. Control frames (responses, REPORTs, aborts) bypass that limit, up to a hard
//! cap past which the connection is closed (a peer that sends requests but never reads its
//! responses cannot grow our memory without bound).
//!
//! A second, relay-wide limit (`--max-queued-bytes`) bounds the memory all outboxes hold
//! together: a data frame that would take the relay-wide count over it is refused the same way.
//! That count is of memory, not of copies: a chunk body shared by many recipients' frames counts
//! once ([`crate::frame`]).
use crate::frame::Frame;
use crate::metrics::Metrics;
use crate::switch::{CloseReason, FrameClass, Outlet, Pushed};
use std::io::IoSlice;
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

/// Frames handed to the kernel in one vectored write, at most. Under fan-out a recipient's queue
/// holds frames of many senders; at 16 the writer still made one system call per 13 frames. Each
/// frame is at most 3 pieces, so 64 frames stay far below the kernel's limit of 1024 pieces
/// (IOV_MAX) per call.
const WRITE_BATCH: usize = 64;

struct Inner {
    tx: mpsc::UnboundedSender<Frame>,
    queued: AtomicUsize,
    limit: usize,
    hard_cap: usize,
    /// The relay-wide limit on `metrics.queued_bytes` for data frames.
    global_cap: usize,
    close: watch::Sender<CloseMode>,
    metrics: Arc<Metrics>,
}

impl Inner {
    /// A frame left the queue (written or discarded). Its body, if shared, is taken off the
    /// relay-wide count when its last copy is dropped.
    fn sub(&self, f: &Frame) {
        self.queued.fetch_sub(f.len(), Ordering::Relaxed);
        self.metrics
            .queued_bytes
            .fetch_sub(f.own_len(), Ordering::Relaxed);
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
    rx: mpsc::UnboundedReceiver<Frame>,
    inner: Arc<Inner>,
}

impl Outbox {
    /// `limit`: the queued-bytes limit for data frames; control frames may go up to
    /// `limit + control_slack`.
    pub fn new(limit: usize, control_slack: usize, metrics: Arc<Metrics>) -> (Outbox, OutboxRx) {
        Outbox::with_global_cap(limit, control_slack, usize::MAX, metrics)
    }

    /// Like [`Outbox::new`], and data frames are also refused when they would take the
    /// relay-wide queued bytes over `global_cap`.
    pub fn with_global_cap(
        limit: usize,
        control_slack: usize,
        global_cap: usize,
        metrics: Arc<Metrics>,
    ) -> (Outbox, OutboxRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (close, _) = watch::channel(CloseMode::Open);
        let inner = Arc::new(Inner {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            hard_cap: limit.saturating_add(control_slack),
            global_cap,
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
    fn push_frame(&self, frame: Frame, class: FrameClass) -> Pushed {
        let i = &self.inner;
        if *i.close.borrow() != CloseMode::Open {
            return Pushed::Dropped;
        }
        let len = frame.len();
        let queued = i.queued.load(Ordering::Relaxed);
        // What this frame adds to the relay's memory: its own bytes, and its body unless another
        // copy of it is queued already.
        let adds = frame.own_len()
            + frame
                .body()
                .filter(|b| !b.is_charged())
                .map_or(0, |b| b.len());
        match class {
            FrameClass::Data if queued.saturating_add(len) > i.limit => return Pushed::Dropped,
            FrameClass::Data if i.metrics.queued().saturating_add(adds) > i.global_cap => {
                Metrics::add(&i.metrics.global_queue_full, 1);
                return Pushed::Dropped;
            }
            FrameClass::Control if queued.saturating_add(len) > i.hard_cap => {
                tracing::warn!(queued, "control frames not read by the peer; closing");
                i.close(CloseMode::Hard);
                return Pushed::Dropped;
            }
            _ => {}
        }
        if let Some(b) = frame.body() {
            b.charge(&i.metrics);
        }
        i.queued.fetch_add(len, Ordering::Relaxed);
        i.metrics
            .queued_bytes
            .fetch_add(frame.own_len(), Ordering::Relaxed);
        if let Err(e) = i.tx.send(frame) {
            i.sub(&e.0);
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
///
/// Frames already queued go out together (up to [`WRITE_BATCH`]) in vectored writes: each
/// frame's head, shared body and end-line are handed to the kernel as they are, never copied
/// into one buffer.
pub async fn run_writer(mut w: OwnedWriteHalf, out: OutboxRx, grace: Duration) {
    let OutboxRx { mut rx, inner } = out;
    let mut close = inner.close.subscribe();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut batch: Vec<Frame> = Vec::with_capacity(WRITE_BATCH);
    // Watches for a hard close while a write is pending (one receiver for the writer's life).
    let mut hard_close = inner.close.subscribe();
    loop {
        let mode = *close.borrow_and_update();
        match mode {
            CloseMode::Hard => break,
            CloseMode::Graceful if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ => {}
        }
        let first = if deadline.is_some() {
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
        batch.push(first);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        // A timer only once closing has begun: arming one per write cost a timer registration
        // per batch while open.
        let ok = match deadline {
            Some(until) => tokio::select! {
                r = write_frames(&mut w, &batch) => r.is_ok(),
                _ = tokio::time::sleep_until(until) => false,
                _ = hard(&mut hard_close) => false,
            },
            None => tokio::select! {
                r = write_frames(&mut w, &batch) => r.is_ok(),
                _ = hard(&mut hard_close) => false,
            },
        };
        let written = batch.len() as u64;
        for f in batch.drain(..) {
            inner.sub(&f);
        }
        if !ok {
            break;
        }
        Metrics::add(&inner.metrics.frames_out, written);
    }
    // Whatever is left is never written: take it off the counters.
    inner.close(CloseMode::Hard);
    rx.close();
    while let Ok(f) = rx.try_recv() {
        inner.sub(&f);
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), w.shutdown()).await;
}

/// Writes every byte of `frames`, in order, with vectored writes.
async fn write_frames(w: &mut OwnedWriteHalf, frames: &[Frame]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = frames.iter().flat_map(Frame::slices).collect();
    let mut bufs: &mut [IoSlice<'_>] = &mut slices;
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Body;

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

    fn data(head: usize, body: &Body) -> Frame {
        Frame::from_parts(vec![b'h'; head], Some(body.clone()), &[b't'; 10])
    }

    /// Issue 7: the relay-wide cap counts a body shared by many recipients once, refuses data
    /// frames beyond it (counted) but never control frames, and the count returns to zero when
    /// everything is written or dropped.
    #[test]
    fn the_global_cap_counts_shared_bodies_once() {
        let m = Metrics::new();
        let outs: Vec<_> = (0..3)
            .map(|_| Outbox::with_global_cap(10_000, 1000, 2000, m.clone()))
            .collect();
        let body = Body::new(vec![1; 1000]);
        for (o, _) in &outs {
            assert_eq!(
                o.push_frame(data(90, &body), FrameClass::Data),
                Pushed::Queued
            );
        }
        // One body, three heads and tails: 1000 + 3 × 100.
        assert_eq!(m.queued(), 1300);
        // Each connection's own count is the whole frame.
        assert_eq!(outs[1].0.queued(), 1100);
        // Another 1000-byte chunk would take the relay over 2000: refused for everyone.
        let next = Body::new(vec![2; 1000]);
        assert_eq!(
            outs[0].0.push_frame(data(90, &next), FrameClass::Data),
            Pushed::Dropped
        );
        assert!(!next.is_charged());
        assert_eq!(m.global_queue_full.load(Ordering::Relaxed), 1);
        // Control frames are not held back by it (they are bounded per connection).
        assert_eq!(
            outs[0].0.push(vec![0; 800], FrameClass::Control),
            Pushed::Queued
        );
        assert_eq!(m.queued(), 2100);
        // Over the cap now, even a frame whose body is already counted adds its head: refused.
        assert_eq!(
            outs[2].0.push_frame(data(0, &body), FrameClass::Data),
            Pushed::Dropped
        );
        // Everything drained: back to zero, the body included once its last copy is gone.
        drop(body);
        for (o, mut rx) in outs {
            while let Ok(f) = rx.rx.try_recv() {
                rx.inner.sub(&f);
            }
            assert_eq!(o.queued(), 0);
        }
        assert_eq!(m.queued(), 0);
    }

    /// The writer puts head, shared body and end-line of every queued frame on the wire in
    /// order, and leaves the counters at zero.
    #[tokio::test]
    async fn the_writer_sends_frames_with_shared_bodies_intact_and_in_order() {
        use tokio::io::AsyncReadExt;
        let m = Metrics::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        let (_r, w) = server.into_split();
        let (o, rx) = Outbox::with_global_cap(1 << 30, 0, 1 << 30, m.clone());
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let body = Body::new(vec![i; 70_000 + i as usize]);
            let f = data(1 + i as usize, &body);
            expected.extend_from_slice(&f.to_vec());
            assert_eq!(o.push_frame(f, FrameClass::Data), Pushed::Queued);
            if i % 3 == 0 {
                let r = format!("MSRP resp{i} 200 OK\r\n").into_bytes();
                expected.extend_from_slice(&r);
                o.push(r, FrameClass::Control);
            }
        }
        let writer = tokio::spawn(run_writer(w, rx, Duration::from_secs(5)));
        let mut got = vec![0u8; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "bytes differ");
        o.close(CloseReason::Left);
        writer.await.unwrap();
        assert_eq!((o.queued(), m.queued()), (0, 0));
        assert_eq!(m.frames_out.load(Ordering::Relaxed), 40 + 14);
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
