//! The relay's memory rows (no baseline): resident memory per idle bound participant, and the
//! peak growth while one very large message crosses in chunks (RFC 4975 §5.1 lets a sender split
//! a message into chunks with Byte-Range; the relay must never hold the whole message).
//!
//! Flags an operator sets for the large message: `--max-size` covers the whole message, CPIM
//! wrapper included (the default admits 16 MiB of content), so it is raised to the message size
//! plus 64 KiB. `--queue-bytes` (4 MiB per recipient) and `--max-queued-bytes` (256 MiB relay
//! wide) bound what waits for a recipient: the sender here keeps at most two chunks beyond what
//! the recipient has received, so those defaults hold. `--chunk-timeout` (540 s between two
//! chunks) does not come into play.
use crate::fanout::{self, RowSink};
use crate::frame::{self, Kind};
use crate::procfs::{loadavg, vm_kib};
use crate::sut::{self, Endpoint, Sut};
use crate::table::Row;
use chat_alias_proto::msrp::{encode, ByteRange, Continuation, Method, RequestHead};
use memchr::memmem;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Plan {
    pub relay: PathBuf,
    pub relay_args: Vec<String>,
    /// Idle bound participants (in conferences of 10).
    pub idle: usize,
    /// Content bytes of the large message.
    pub big: u64,
    /// Bytes per chunk the sender writes.
    pub chunk: u64,
    pub repeats: usize,
}

fn kib(pid: u32, field: &str) -> Result<u64, String> {
    vm_kib(pid, field).ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// KiB of relay RSS per idle bound participant.
pub async fn idle_rss(plan: &Plan) -> Result<f64, String> {
    let mut args = plan.relay_args.clone();
    // The default --max-connections (4096) is below the count measured here.
    args.extend([
        "--max-connections".to_string(),
        (plan.idle + 256).max(4096).to_string(),
    ]);
    let mut relay = Sut::relay(&plan.relay, &args)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = kib(relay.pid, "VmRSS")?;
    let mut eps: Vec<Endpoint> = Vec::with_capacity(plan.idle);
    let mut k = 0;
    while eps.len() < plan.idle {
        let n = (plan.idle - eps.len()).min(10);
        eps.extend(relay.join(&format!("sip:idle{k}@bench.invalid"), n)?);
        k += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let joined = kib(relay.pid, "VmRSS")?;
    let held = sut::bind_all(relay.port, &eps, true).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = kib(relay.pid, "VmRSS")?;
    drop(held);
    let per = (after as f64 - before as f64) / plan.idle as f64;
    eprintln!(
        "memory: {} idle bound participants: relay RSS {before} KiB → {joined} KiB joined → {after} KiB bound, {per:.2} KiB each ({:.2} registered, {:.2} connected)",
        plan.idle,
        (joined as f64 - before as f64) / plan.idle as f64,
        (after as f64 - joined as f64) / plan.idle as f64,
    );
    Ok(per)
}

fn chunk_frame(ep: &Endpoint, n: u64, start: u64, piece: &[u8], total: u64, last: bool) -> Vec<u8> {
    let tid = format!("big{n:08x}");
    let mut h = RequestHead::new(
        &tid,
        Method::Send,
        vec![ep.to.clone()],
        vec![ep.own.clone()],
    );
    h.message_id = Some("bigmessage0001".into());
    h.byte_range = Some(ByteRange {
        start,
        end: Some(start + piece.len() as u64 - 1),
        total: Some(total),
    });
    h.content_type = Some("message/cpim".into());
    let mut out = Vec::with_capacity(piece.len() + 512);
    encode::request_head(&h, &mut out);
    out.extend_from_slice(piece);
    let flag = if last {
        Continuation::End
    } else {
        Continuation::More
    };
    encode::end_line(&tid, flag, true, &mut out);
    out
}

/// The end of a frame's Byte-Range (`Byte-Range: start-END/total`).
fn range_end(head: &[u8]) -> Option<u64> {
    let at = memmem::find(head, b"\r\nByte-Range: ")? + 14;
    let rest = &head[at..];
    let dash = rest.iter().position(|&b| b == b'-')?;
    let digits: Vec<u8> = rest[dash + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// MiB of peak relay RSS growth while one message of `plan.big` content bytes crosses from a
/// sender to one recipient in `plan.chunk`-byte chunks; and the MB/s it crossed at.
pub async fn big_message(plan: &Plan) -> Result<(f64, f64), String> {
    let mut args = plan.relay_args.clone();
    args.extend(["--max-size".to_string(), (plan.big + 64 * 1024).to_string()]);
    let mut relay = Sut::relay(&plan.relay, &args)?;
    let eps = relay.join("sip:big@bench.invalid", 2)?;
    let mut conns = sut::bind_all(relay.port, &eps, true).await?;
    let (rx, rx_rest) = conns.pop().ok_or("no recipient")?;
    let (tx, _) = conns.pop().ok_or("no sender")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = kib(relay.pid, "VmRSS")?;
    let cpim = chat_alias_proto::cpim::compose(
        &eps[0].from,
        std::slice::from_ref(&eps[0].conference),
        &[("DateTime", "2026-12-03T12:00:00Z")],
        "text/plain;charset=UTF-8",
        b"",
    );
    let total = cpim.len() as u64 + plan.big;
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let failed = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();

    // The recipient: answers every chunk as a client does, reports how far it got.
    let recipient = {
        let (received, progress, failed) = (received.clone(), progress.clone(), failed.clone());
        let ep = eps[1].clone();
        tokio::spawn(async move {
            let (mut r, mut w) = rx.into_split();
            let mut buf = rx_rest;
            let mut chunk = vec![0u8; 256 * 1024];
            let mut searched = 0;
            loop {
                let mut at = 0;
                let mut answers = Vec::new();
                loop {
                    let f = match frame::scan(&buf[at..], &mut searched, 4 << 20) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => return Err(format!("recipient: {e}")),
                    };
                    let fr = &buf[at..at + f.len];
                    if f.kind == Kind::Request {
                        let tid = &fr[f.tid.clone()];
                        fanout::answer(&ep, tid, &mut answers);
                        if let Some(end) = range_end(&fr[..fr.len().min(4096)]) {
                            received.fetch_max(end, Ordering::AcqRel);
                            progress.notify_one();
                        }
                        if f.flag == b'#' {
                            failed.store(true, Ordering::Release);
                            progress.notify_one();
                            return Err("the relay aborted the message (#)".into());
                        }
                        if f.flag == b'$' {
                            return Ok(());
                        }
                    }
                    at += f.len;
                }
                buf.drain(..at);
                if !answers.is_empty() && w.write_all(&answers).await.is_err() {
                    return Err("recipient: write failed".into());
                }
                match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Err("recipient: connection closed".into()),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
    };

    // The sender: chunk after chunk, never more than two chunks beyond the recipient.
    let (mut sr, mut sw) = tx.into_split();
    let refused = Arc::new(AtomicU64::new(0));
    let answers = {
        let refused = refused.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            let mut searched = 0;
            loop {
                let mut at = 0;
                while let Ok(Some(f)) = frame::scan(&buf[at..], &mut searched, 1 << 20) {
                    if f.kind == Kind::Response && !buf[at..][f.what.clone()].starts_with(b"200") {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    at += f.len;
                }
                buf.drain(..at);
                match sr.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
    };
    let filler = vec![b'x'; plan.chunk as usize];
    let window = 2 * plan.chunk;
    let mut start = 1u64;
    let mut n = 0u64;
    while start <= total {
        while start - 1 > received.load(Ordering::Acquire) + window - plan.chunk {
            if failed.load(Ordering::Acquire) {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), progress.notified()).await;
        }
        if failed.load(Ordering::Acquire) || refused.load(Ordering::Relaxed) > 0 {
            break;
        }
        let len = plan.chunk.min(total - start + 1);
        let mut piece = Vec::with_capacity(len as usize);
        let from = start - 1;
        if from < cpim.len() as u64 {
            let head = &cpim[from as usize..cpim.len().min((from + len) as usize)];
            piece.extend_from_slice(head);
        }
        piece.extend_from_slice(&filler[..len as usize - piece.len()]);
        let last = start + len > total;
        let f = chunk_frame(&eps[0], n, start, &piece, total, last);
        sw.write_all(&f)
            .await
            .map_err(|e| format!("sender write: {e}"))?;
        start += len;
        n += 1;
    }
    let outcome = tokio::time::timeout(Duration::from_secs(120), recipient)
        .await
        .map_err(|_| "the large message did not arrive within 120 s".to_string())?
        .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let hwm = kib(relay.pid, "VmHWM")?;
    answers.abort();
    if refused.load(Ordering::Relaxed) > 0 {
        return Err("the relay refused a chunk of the large message".into());
    }
    outcome?;
    let growth = (hwm.saturating_sub(before)) as f64 / 1024.0;
    let rate = total as f64 / secs / 1e6;
    eprintln!(
        "memory: {} MiB message in {} chunks of {} KiB: relay RSS {before} KiB before, peak {hwm} KiB, growth {growth:.1} MiB, {rate:.0} MB/s",
        plan.big >> 20,
        n,
        plan.chunk >> 10
    );
    Ok((growth, rate))
}

/// Both memory rows, `plan.repeats` times each, into `sink`.
pub fn run(plan: &Plan, sink: &mut RowSink) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let load0 = loadavg();
    let mut idle = Vec::new();
    for _ in 0..plan.repeats {
        idle.push(rt.block_on(idle_rss(plan))?);
    }
    let load1 = loadavg();
    let row = Row::new(
        "memory",
        &format!(
            "relay RSS per idle bound participant ({} in conferences of 10)",
            plan.idle
        ),
        "KiB",
        "lower",
    )
    .with_samples(&idle, None);
    let met = row.product.map(|v| v <= 8.0);
    sink.put(&row.with_target("<= 8 KiB", met), (&load0, &load1))?;
    let mut growth = Vec::new();
    for _ in 0..plan.repeats {
        growth.push(rt.block_on(big_message(plan))?.0);
    }
    let load2 = loadavg();
    let size = if plan.big >= 1 << 30 {
        format!("{} GiB", plan.big >> 30)
    } else {
        format!("{} MiB", plan.big >> 20)
    };
    let row = Row::new(
        "memory",
        &format!(
            "relay peak RSS growth while one {size} message crosses ({} KiB chunks, 1 recipient)",
            plan.chunk >> 10
        ),
        "MiB",
        "lower",
    )
    .with_samples(&growth, None);
    let met = row.product.map(|v| v < 32.0);
    sink.put(&row.with_target("< 32 MiB", met), (&load1, &load2))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_their_range_and_flag() {
        let ep = Endpoint {
            own: "msrp://127.0.0.1:9/ac;tcp".into(),
            to: "msrp://127.0.0.1:1/a;tcp".into(),
            from: "<sip:a@b>".into(),
            conference: "<sip:c@d>".into(),
        };
        let f = chunk_frame(&ep, 3, 1_048_577, b"abc", 1_048_579, true);
        let s = frame::scan(&f, &mut 0, 1 << 20).unwrap().unwrap();
        assert_eq!((s.len, s.flag), (f.len(), b'$'));
        assert_eq!(range_end(&f), Some(1_048_579));
        assert!(String::from_utf8_lossy(&f).contains("Byte-Range: 1048577-1048579/1048579\r\n"));
        let f = chunk_frame(&ep, 0, 1, b"abc", 10, false);
        assert_eq!(
            frame::scan(&f, &mut 0, 1 << 20).unwrap().unwrap().flag,
            b'+'
        );
        assert_eq!(range_end(b"MSRP a SEND\r\nByte-Range: 1-*/*\r\n"), None);
    }
}
