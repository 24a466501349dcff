//! `chat-alias-bench forward --listen ADDR`: the raw forwarder, the baseline of the fan-out
//! measures. What an operator could put in the relay's place with no protocol knowledge at all:
//! every accepted connection is in one room, each whole request frame (found by its boundaries
//! only, [`crate::frame`]) is written unchanged to every other connection, responses are read
//! and dropped, and nothing is ever answered. It runs on tokio's multi-thread scheduler with one
//! worker per core, so the baseline uses the whole machine.
//!
//! Per connection: a reader task (scans frames, appends each request frame to the other
//! connections' outboxes) and a writer task (writes its outbox in one system call per wake-up).
//! An outbox holds at most `queue_bytes`; a frame that does not fit is dropped for that recipient
//! (counted), as the relay drops data for a congested recipient.
use crate::frame::{self, Kind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Limits of the forwarder.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest frame; a connection sending a larger one is closed.
    pub max_frame: usize,
    /// Bytes that may wait for one recipient.
    pub queue_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_frame: 1 << 20,
            queue_bytes: 4 << 20,
        }
    }
}

struct Outbox {
    buf: Mutex<Vec<u8>>,
    wake: Notify,
    closed: AtomicBool,
}

/// Everything connected, and what was counted.
#[derive(Default)]
pub struct Room {
    members: Mutex<Vec<(u64, Arc<Outbox>)>>,
    next_id: AtomicU64,
    pub frames_in: AtomicU64,
    pub copies_out: AtomicU64,
    pub copies_dropped: AtomicU64,
}

/// Accepts connections on `listener` forever; every one joins `room`.
pub async fn serve(listener: TcpListener, room: Arc<Room>, opts: Options) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let room = room.clone();
                tokio::spawn(async move { connection(stream, room, opts).await });
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn connection(stream: TcpStream, room: Arc<Room>, opts: Options) {
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    let outbox = Arc::new(Outbox {
        buf: Mutex::new(Vec::new()),
        wake: Notify::new(),
        closed: AtomicBool::new(false),
    });
    lock(&room.members).push((id, outbox.clone()));
    let (mut r, mut w) = stream.into_split();
    let writer = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                outbox.wake.notified().await;
                std::mem::swap(&mut *lock(&outbox.buf), &mut out);
                if !out.is_empty() && w.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
                if outbox.closed.load(Ordering::Acquire) {
                    break;
                }
            }
            outbox.closed.store(true, Ordering::Release);
        })
    };
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut searched = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut others: Vec<Arc<Outbox>> = Vec::new();
    'read: loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // The request frames complete in this read, as ranges of `buf`.
        let mut at = 0;
        let mut frames: Vec<std::ops::Range<usize>> = Vec::new();
        loop {
            match frame::scan(&buf[at..], &mut searched, opts.max_frame) {
                Ok(Some(f)) => {
                    if f.kind == Kind::Request {
                        frames.push(at..at + f.len);
                    }
                    at += f.len;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        if !frames.is_empty() {
            others.clear();
            others.extend(
                lock(&room.members)
                    .iter()
                    .filter(|(i, _)| *i != id)
                    .map(|(_, o)| o.clone()),
            );
            room.frames_in
                .fetch_add(frames.len() as u64, Ordering::Relaxed);
            let (mut sent, mut dropped) = (0u64, 0u64);
            for o in &others {
                let mut q = lock(&o.buf);
                for f in &frames {
                    if q.len() + f.len() > opts.queue_bytes {
                        dropped += 1;
                    } else {
                        q.extend_from_slice(&buf[f.clone()]);
                        sent += 1;
                    }
                }
                drop(q);
                o.wake.notify_one();
            }
            room.copies_out.fetch_add(sent, Ordering::Relaxed);
            room.copies_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        buf.drain(..at);
    }
    lock(&room.members).retain(|(i, _)| *i != id);
    outbox.closed.store(true, Ordering::Release);
    outbox.wake.notify_one();
    let _ = writer.await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked mid-append; the bytes are still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The subcommand: serves `listen` until killed.
pub fn run(listen: SocketAddr, opts: Options) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        eprintln!("chat-alias-bench forward: listening on {listen}");
        serve(listener, Arc::new(Room::default()), opts).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn send(tid: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "MSRP {tid} SEND\r\nTo-Path: msrp://127.0.0.1:1/r;tcp\r\nFrom-Path: msrp://127.0.0.1:2/s;tcp\r\nMessage-ID: m{tid}\r\nByte-Range: 1-{}/{}\r\nContent-Type: message/cpim\r\n\r\n",
            body.len(),
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
        v
    }

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut v))
            .await
            .expect("in time")
            .expect("read");
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_go_whole_to_every_other_connection_and_responses_nowhere() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let room = Arc::new(Room::default());
        tokio::spawn(serve(listener, room.clone(), Options::default()));
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        while lock(&room.members).len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A body holding a line that looks like an end-line of a longer transaction id.
        let f1 = send("tx0001", b"hello\r\n-------tx0001X\r\nstill body");
        let f2 = send("tx0002", &vec![b'z'; 70_000]);
        let resp = b"MSRP zz99 200 OK\r\nTo-Path: msrp://a:1/b;tcp\r\nFrom-Path: msrp://c:1/d;tcp\r\n-------zz99$\r\n";
        let mut wire = Vec::new();
        wire.extend_from_slice(&f1);
        wire.extend_from_slice(resp);
        wire.extend_from_slice(&f2);
        // Split reads: the frames arrive in odd pieces, a few bytes at a time at first.
        for piece in wire.chunks(997) {
            a.write_all(piece).await.unwrap();
            a.flush().await.unwrap();
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let want: Vec<u8> = [f1.clone(), f2.clone()].concat();
        assert_eq!(read_exactly(&mut b, want.len()).await, want);
        assert_eq!(read_exactly(&mut c, want.len()).await, want);
        // The response went nowhere, and nothing came back to the sender.
        c.write_all(resp).await.unwrap();
        let f3 = send("tx0003", b"from c");
        c.write_all(&f3).await.unwrap();
        assert_eq!(read_exactly(&mut b, f3.len()).await, f3);
        assert_eq!(read_exactly(&mut a, f3.len()).await, f3);
        assert_eq!(room.frames_in.load(Ordering::Relaxed), 3);
        assert_eq!(room.copies_out.load(Ordering::Relaxed), 6);
        // A connection that is not speaking MSRP is closed; the others go on.
        let mut d = TcpStream::connect(addr).await.unwrap();
        d.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut one = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), d.read(&mut one))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "closed");
        b.write_all(&f1).await.unwrap();
        assert_eq!(read_exactly(&mut a, f1.len()).await, f1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_outbox_drops_frames_for_that_recipient_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let room = Arc::new(Room::default());
        let opts = Options {
            max_frame: 1 << 20,
            queue_bytes: 64 * 1024,
        };
        tokio::spawn(serve(listener, room.clone(), opts));
        let mut a = TcpStream::connect(addr).await.unwrap();
        // b never reads: its socket buffers and then its outbox fill.
        let _b = TcpStream::connect(addr).await.unwrap();
        while lock(&room.members).len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let f = send("big00001", &vec![b'q'; 60_000]);
        for _ in 0..400 {
            a.write_all(&f).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while room.frames_in.load(Ordering::Relaxed) < 400 {
            assert!(std::time::Instant::now() < deadline, "forwarder stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(room.copies_dropped.load(Ordering::Relaxed) > 0);
        assert_eq!(
            room.copies_dropped.load(Ordering::Relaxed) + room.copies_out.load(Ordering::Relaxed),
            400
        );
    }
}
