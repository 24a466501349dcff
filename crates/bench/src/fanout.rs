//! `chat-alias-bench fanout`: P participants in one conference, S of them sending 1 KiB CPIM
//! messages (message/cpim around text/plain, as the client sends them) to the conference, each
//! with at most 16 messages in flight, through the relay and, the same way, through the raw
//! forwarder. In flight = not yet received by every other participant (the generator sees both
//! ends), so the window does not depend on the relay's 200s, which the forwarder does not send.
//!
//! Every message's text starts with a marker: sender, sequence number and the send time (one
//! monotonic clock in this process), so each receipt gives a latency and is checked against the
//! sender's order (each recipient must see each sender's messages in sequence, none missing).
//! Recipients answer every SEND with a 200 as a client does (RFC 4975 §7.2); the relay reads and
//! drops those answers, and so does the forwarder.
use crate::frame::{self, Kind};
use crate::sut::{self, Endpoint, Sut};
use chat_alias_proto::msrp::{encode, ByteRange, Continuation, Method, RequestHead};
use memchr::memmem;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Messages a sender may have in flight.
pub const WINDOW: usize = 16;
/// Size of the message/cpim body of every message.
pub const BODY: usize = 1024;

const MARKER: &[u8] = b"\r\n\r\n~b";
/// Marker: "~b" + sender (4 hex) + sequence (12 hex) + send time in ns (16 hex).
const MARK_LEN: usize = 2 + 4 + 12 + 16;

/// One load configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub participants: usize,
    pub senders: usize,
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.participants, self.senders)
    }
}

impl std::str::FromStr for Config {
    type Err = String;
    fn from_str(s: &str) -> Result<Config, String> {
        let (p, q) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected PARTICIPANTS/SENDERS, e.g. 10/1"))?;
        let p: usize = p
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad participant count"))?;
        let q: usize = q
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad sender count"))?;
        if p < 2 || q < 1 || q > p || p > 4096 {
            return Err(format!(
                "{s:?}: need 2 <= participants <= 4096 and 1 <= senders <= participants"
            ));
        }
        Ok(Config {
            participants: p,
            senders: q,
        })
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub deliveries: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU of the relay (or forwarder) per delivery, µs.
    pub cpu_us_per_delivery: f64,
    /// CPU of the generator per delivery, µs (to see whether it was the bottleneck).
    pub generator_us_per_delivery: f64,
    /// Receipts out of a sender's order (a gap, a repeat or a step back), whole run.
    pub order_violations: u64,
    /// Responses other than 200 to what the generator sent.
    pub refused: u64,
    pub first_refusal: Option<String>,
}

struct SenderState {
    slots: [AtomicU32; WINDOW],
    completed: AtomicU64,
}

struct ConnShared {
    answers: Mutex<Vec<u8>>,
    wake: Notify,
    /// Bodiless SENDs of the current sync round received (see [`sync_rounds`]).
    synced: AtomicU64,
}

struct Shared {
    epoch: Instant,
    /// 0: warm-up, 1: measuring, 2: stopping.
    phase: AtomicU8,
    stop: AtomicBool,
    delivered: AtomicU64,
    violations: AtomicU64,
    refused: AtomicU64,
    first_refusal: Mutex<Option<String>>,
    senders: Vec<SenderState>,
    conns: Vec<ConnShared>,
    round: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hex_into(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// The message/cpim body of `ep`'s messages, [`BODY`] bytes, and where its marker's fields are.
pub fn body_template(ep: &Endpoint, sender: usize) -> (Vec<u8>, usize) {
    let mut text = vec![b'~', b'b'];
    text.resize(MARK_LEN, b'0');
    hex_into(&mut text[2..6], sender as u64);
    let mut body = chat_alias_proto::cpim::compose(
        &ep.from,
        std::slice::from_ref(&ep.conference),
        &[("DateTime", "2026-12-03T12:00:00Z")],
        "text/plain;charset=UTF-8",
        &text,
    );
    let at = body.len() - MARK_LEN;
    let pad = BODY.saturating_sub(body.len());
    body.extend(std::iter::repeat_n(b'x', pad));
    (body, at)
}

/// Sender, sequence number and send time of a frame carrying a marked body.
pub fn find_marker(finder: &memmem::Finder<'_>, frame: &[u8]) -> Option<(usize, u64, u64)> {
    let at = finder.find(frame)? + MARKER.len() - 2;
    let m = frame.get(at..at + MARK_LEN)?;
    Some((
        parse_hex(&m[2..6])? as usize,
        parse_hex(&m[6..18])?,
        parse_hex(&m[18..34])?,
    ))
}

fn message_frame(ep: &Endpoint, conn: usize, seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let tid = format!("t{conn:x}x{seq:x}");
    let mut h = RequestHead::new(
        &tid,
        Method::Send,
        vec![ep.to.clone()],
        vec![ep.own.clone()],
    );
    h.message_id = Some(format!("m{conn:x}x{seq:x}"));
    h.byte_range = Some(ByteRange {
        start: 1,
        end: Some(body.len() as u64),
        total: Some(body.len() as u64),
    });
    h.content_type = Some("message/cpim".into());
    encode::request_head(&h, out);
    out.extend_from_slice(body);
    encode::end_line(&tid, Continuation::End, true, out);
}

/// The 200 a recipient sends for `tid`: To-Path = the request's previous hop (the relay's URI
/// of this participant's session), From-Path = this participant.
pub(crate) fn answer(ep: &Endpoint, tid: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"MSRP ");
    out.extend_from_slice(tid);
    out.extend_from_slice(b" 200 OK\r\nTo-Path: ");
    out.extend_from_slice(ep.to.as_bytes());
    out.extend_from_slice(b"\r\nFrom-Path: ");
    out.extend_from_slice(ep.own.as_bytes());
    out.extend_from_slice(b"\r\n-------");
    out.extend_from_slice(tid);
    out.extend_from_slice(b"$\r\n");
}

async fn reader(
    i: usize,
    ep: Endpoint,
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    sh: Arc<Shared>,
) -> Vec<u64> {
    let finder = memmem::Finder::new(MARKER);
    let nsenders = sh.senders.len();
    let mut expected = vec![0u64; nsenders];
    let mut samples = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut searched = 0;
    loop {
        let mut at = 0;
        let mut delivered = 0u64;
        let measuring = sh.phase.load(Ordering::Relaxed) == 1;
        let now = sh.epoch.elapsed().as_nanos() as u64;
        let mut answers = Vec::new();
        loop {
            let f = match frame::scan(&buf[at..], &mut searched, 1 << 20) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return samples,
            };
            let fr = &buf[at..at + f.len];
            match f.kind {
                Kind::Request => {
                    let tid = &fr[f.tid.clone()];
                    answer(&ep, tid, &mut answers);
                    if tid.starts_with(b"sync")
                        && tid.get(4..12).and_then(parse_hex)
                            == Some(sh.round.load(Ordering::Acquire))
                    {
                        sh.conns[i].synced.fetch_add(1, Ordering::AcqRel);
                    }
                    if let Some((s, seq, ts)) = find_marker(&finder, fr) {
                        if s < nsenders && s != i {
                            let exp = expected[s];
                            if seq != exp {
                                sh.violations.fetch_add(1, Ordering::Relaxed);
                            }
                            if seq >= exp {
                                expected[s] = seq + 1;
                                delivered += 1;
                                if measuring {
                                    samples.push(now.saturating_sub(ts));
                                }
                                let st = &sh.senders[s];
                                let slot = &st.slots[(seq % WINDOW as u64) as usize];
                                if slot.fetch_sub(1, Ordering::AcqRel) == 1 {
                                    st.completed.fetch_add(1, Ordering::AcqRel);
                                    sh.conns[s].wake.notify_one();
                                }
                            }
                        }
                    }
                }
                Kind::Response => {
                    if !fr[f.what.clone()].starts_with(b"200")
                        && sh.refused.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        *lock(&sh.first_refusal) =
                            Some(String::from_utf8_lossy(&fr[..f.len.min(400)]).into_owned());
                    }
                }
            }
            at += f.len;
        }
        buf.drain(..at);
        if delivered > 0 {
            sh.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        if !answers.is_empty() {
            lock(&sh.conns[i].answers).extend_from_slice(&answers);
            sh.conns[i].wake.notify_one();
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return samples,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn writer(
    i: usize,
    ep: Endpoint,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    sh: Arc<Shared>,
    participants: usize,
) {
    let sender = i < sh.senders.len();
    let (mut body, mark) = body_template(&ep, i);
    let mut sent = 0u64;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        sh.conns[i].wake.notified().await;
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        std::mem::swap(&mut *lock(&sh.conns[i].answers), &mut out);
        if sender {
            let st = &sh.senders[i];
            while sent - st.completed.load(Ordering::Acquire) < WINDOW as u64 {
                st.slots[(sent % WINDOW as u64) as usize]
                    .store((participants - 1) as u32, Ordering::Release);
                let now = sh.epoch.elapsed().as_nanos() as u64;
                hex_into(&mut body[mark + 6..mark + 18], sent);
                hex_into(&mut body[mark + 18..mark + 34], now);
                message_frame(&ep, i, sent, &body, &mut out);
                sent += 1;
            }
        }
        if !out.is_empty() && w.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// The forwarder answers nothing, so a bind does not tell when it has taken a connection into
/// its room, and a message sent before would reach fewer recipients. Every connection sends a
/// bodiless SEND per round until a round in which each connection received all the others'.
async fn sync_rounds(
    sh: &Shared,
    eps: &[Endpoint],
    halves: &mut [tokio::net::tcp::OwnedWriteHalf],
) -> Result<(), String> {
    let want = (eps.len() - 1) as u64;
    for round in 1..=50u64 {
        sh.round.store(round, Ordering::Release);
        for c in &sh.conns {
            c.synced.store(0, Ordering::Release);
        }
        for (i, (ep, w)) in eps.iter().zip(halves.iter_mut()).enumerate() {
            let f = sut::bind_frame(ep, &format!("sync{round:08x}x{i:x}"));
            w.write_all(&f)
                .await
                .map_err(|e| format!("sync write: {e}"))?;
        }
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if sh
                .conns
                .iter()
                .all(|c| c.synced.load(Ordering::Acquire) >= want)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Err("the forwarder did not connect every participant to every other".into())
}

/// One run against `sut`: joins and binds, `warmup` of load, then `seconds` measured.
pub async fn run_once(
    sut: &mut Sut,
    cfg: Config,
    warmup: Duration,
    seconds: Duration,
) -> Result<Outcome, String> {
    let eps = sut.join("sip:bench@bench.invalid", cfg.participants)?;
    let streams = sut::bind_all(sut.port, &eps, sut.is_relay()).await?;
    let sh = Arc::new(Shared {
        epoch: Instant::now(),
        phase: AtomicU8::new(0),
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        first_refusal: Mutex::new(None),
        senders: (0..cfg.senders)
            .map(|_| SenderState {
                slots: Default::default(),
                completed: AtomicU64::new(0),
            })
            .collect(),
        conns: (0..cfg.participants)
            .map(|_| ConnShared {
                answers: Mutex::new(Vec::new()),
                wake: Notify::new(),
                synced: AtomicU64::new(0),
            })
            .collect(),
        round: AtomicU64::new(0),
    });
    let mut readers = Vec::new();
    let mut halves = Vec::new();
    for (i, ((stream, rest), ep)) in streams.into_iter().zip(eps.iter()).enumerate() {
        let (r, w) = stream.into_split();
        readers.push(tokio::spawn(reader(i, ep.clone(), r, rest, sh.clone())));
        halves.push(w);
    }
    if !sut.is_relay() {
        sync_rounds(&sh, &eps, &mut halves).await?;
    }
    let mut writers = Vec::new();
    for (i, (w, ep)) in halves.into_iter().zip(eps.iter()).enumerate() {
        writers.push(tokio::spawn(writer(
            i,
            ep.clone(),
            w,
            sh.clone(),
            cfg.participants,
        )));
    }
    for c in &sh.conns {
        c.wake.notify_one();
    }
    tokio::time::sleep(warmup).await;
    let me = std::process::id();
    let (d0, c0, g0, t0) = (
        sh.delivered.load(Ordering::Relaxed),
        crate::procfs::cpu_time(sut.pid),
        crate::procfs::cpu_time(me),
        Instant::now(),
    );
    sh.phase.store(1, Ordering::Relaxed);
    tokio::time::sleep(seconds).await;
    sh.phase.store(2, Ordering::Relaxed);
    let (d1, c1, g1, t1) = (
        sh.delivered.load(Ordering::Relaxed),
        crate::procfs::cpu_time(sut.pid),
        crate::procfs::cpu_time(me),
        Instant::now(),
    );
    sh.stop.store(true, Ordering::Relaxed);
    for c in &sh.conns {
        c.wake.notify_one();
    }
    for w in writers {
        let _ = w.await;
    }
    // The writers have closed their halves: the SUT sees each connection end and closes it, and
    // each reader ends on that; a reader still waiting after that is aborted.
    let mut samples = Vec::new();
    for r in readers {
        match tokio::time::timeout(Duration::from_secs(5), r).await {
            Ok(Ok(s)) => samples.extend(s),
            _ => return Err("a reader did not end within 5 s".into()),
        }
    }
    let deliveries = d1 - d0;
    let secs = (t1 - t0).as_secs_f64();
    let per_delivery = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if deliveries > 0 => (b - a).as_secs_f64() * 1e6 / deliveries as f64,
        _ => f64::NAN,
    };
    let first_refusal = lock(&sh.first_refusal).clone();
    let p50 = crate::stats::percentile(&mut samples, 50.0).unwrap_or(0);
    let p99 = crate::stats::percentile(&mut samples, 99.0).unwrap_or(0);
    Ok(Outcome {
        deliveries,
        per_second: deliveries as f64 / secs,
        p50_ms: p50 as f64 / 1e6,
        p99_ms: p99 as f64 / 1e6,
        cpu_us_per_delivery: per_delivery(c0, c1),
        generator_us_per_delivery: per_delivery(g0, g1),
        order_violations: sh.violations.load(Ordering::Relaxed),
        refused: sh.refused.load(Ordering::Relaxed),
        first_refusal,
    })
}

/// What `fanout` measures and how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub relay: std::path::PathBuf,
    pub relay_args: Vec<String>,
    pub configs: Vec<Config>,
    pub repeats: usize,
    pub warmup: Duration,
    pub seconds: Duration,
}

/// Appends rows to the part's file, each with the load averages around its measurement.
pub struct RowSink {
    file: std::fs::File,
}

impl RowSink {
    pub fn create(path: &std::path::Path, append: bool) -> Result<RowSink, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(RowSink { file })
    }

    pub fn put(&mut self, row: &crate::table::Row, load: (&str, &str)) -> Result<(), String> {
        use std::io::Write;
        #[derive(serde::Serialize)]
        struct Load<'a> {
            start: &'a str,
            end: &'a str,
        }
        #[derive(serde::Serialize)]
        struct WithLoad<'a> {
            #[serde(flatten)]
            row: &'a crate::table::Row,
            load: Load<'a>,
        }
        let v = WithLoad {
            row,
            load: Load {
                start: load.0,
                end: load.1,
            },
        };
        let mut line = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| format!("cannot write a row: {e}"))
    }
}

async fn one(plan: &Plan, relay: bool, cfg: Config) -> Result<Outcome, String> {
    let mut sut = if relay {
        Sut::relay(&plan.relay, &plan.relay_args)?
    } else {
        Sut::forwarder()?
    };
    let o = run_once(&mut sut, cfg, plan.warmup, plan.seconds).await?;
    eprintln!(
        "fanout {cfg} {}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms, {:.2} µs CPU/delivery (generator {:.2} µs), {} order violations, {} refused",
        if relay { "relay    " } else { "forwarder" },
        o.per_second,
        o.p50_ms,
        o.p99_ms,
        o.cpu_us_per_delivery,
        o.generator_us_per_delivery,
        o.order_violations,
        o.refused
    );
    if o.refused > 0 {
        return Err(format!(
            "{} of the generator's frames were refused; the first answer: {}",
            o.refused,
            o.first_refusal.clone().unwrap_or_default()
        ));
    }
    if o.deliveries == 0 {
        return Err(format!(
            "no delivery at all through the {}",
            if relay { "relay" } else { "forwarder" }
        ));
    }
    Ok(o)
}

/// Runs every configuration `repeats` times against the relay and the forwarder, interleaved
/// (relay first on even repeats, forwarder first on odd ones), and writes its rows.
pub fn run(plan: &Plan, sink: &mut RowSink) -> Result<(), String> {
    use crate::table::Row;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (mut viol_p, mut viol_b) = (0u64, 0u64);
    let part_load = crate::procfs::loadavg();
    for &cfg in &plan.configs {
        let load0 = crate::procfs::loadavg();
        let (mut prod, mut base) = (Vec::new(), Vec::new());
        for r in 0..plan.repeats {
            let order = if r % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for relay in order {
                let o = rt.block_on(one(plan, relay, cfg))?;
                if relay {
                    viol_p += o.order_violations;
                    prod.push(o);
                } else {
                    viol_b += o.order_violations;
                    base.push(o);
                }
            }
        }
        let load1 = crate::procfs::loadavg();
        let col = |v: &[Outcome], f: fn(&Outcome) -> f64| v.iter().map(f).collect::<Vec<f64>>();
        let what = format!(
            "{} participants / {} sender{} (1 KiB, window 16)",
            cfg.participants,
            cfg.senders,
            if cfg.senders == 1 { "" } else { "s" }
        );
        let rate = Row::new("fan-out", &format!("deliveries/s, {what}"), "/s", "higher")
            .with_samples(
                &col(&prod, |o| o.per_second),
                Some(&col(&base, |o| o.per_second)),
            );
        let met = rate.ratio.map(|x| x >= 0.7);
        sink.put(
            &rate.with_target(">= 0.7 x baseline", met),
            (&load0, &load1),
        )?;
        let p50 = Row::new("fan-out", &format!("latency p50, {what}"), "ms", "lower")
            .with_samples(&col(&prod, |o| o.p50_ms), Some(&col(&base, |o| o.p50_ms)));
        sink.put(&p50, (&load0, &load1))?;
        let p99 = Row::new("fan-out", &format!("latency p99, {what}"), "ms", "lower")
            .with_samples(&col(&prod, |o| o.p99_ms), Some(&col(&base, |o| o.p99_ms)));
        let met = p99.ratio.map(|x| x <= 2.0);
        sink.put(&p99.with_target("<= 2 x baseline", met), (&load0, &load1))?;
        let cpu = Row::new(
            "fan-out",
            &format!("relay CPU per delivery, {what}"),
            "µs",
            "lower",
        )
        .with_samples(
            &col(&prod, |o| o.cpu_us_per_delivery),
            Some(&col(&base, |o| o.cpu_us_per_delivery)),
        );
        let cpu = if cfg.participants == 10 && cfg.senders == 10 {
            let met = cpu.product.map(|x| x <= 3.0);
            cpu.with_target("<= 3 µs", met)
        } else {
            cpu
        };
        sink.put(&cpu, (&load0, &load1))?;
    }
    let mut v = Row::new(
        "fan-out",
        "per-sender order violations seen by recipients (all runs)",
        "",
        "lower",
    );
    v.product = Some(viol_p as f64);
    v.baseline = Some(viol_b as f64);
    let v = v.with_target("0", Some(viol_p == 0));
    sink.put(&v, (&part_load, &crate::procfs::loadavg()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint {
            own: "msrp://127.0.0.1:9/abcdc;tcp".into(),
            to: "msrp://127.0.0.1:2855/abcd;tcp".into(),
            from: "\"bench1\" <sip:anonymous1@anonymous.invalid>".into(),
            conference: "<sip:bench@bench.invalid>".into(),
        }
    }

    #[test]
    fn configs_parse() {
        assert_eq!(
            "10/1".parse::<Config>().unwrap(),
            Config {
                participants: 10,
                senders: 1
            }
        );
        assert!("1/1".parse::<Config>().is_err());
        assert!("3/4".parse::<Config>().is_err());
        assert!("10".parse::<Config>().is_err());
        assert!("x/1".parse::<Config>().is_err());
    }

    #[test]
    fn a_message_is_one_whole_frame_of_1_kib_cpim_whose_marker_reads_back() {
        let e = ep();
        let (mut body, mark) = body_template(&e, 7);
        assert_eq!(body.len(), BODY);
        hex_into(&mut body[mark + 6..mark + 18], 0x1234);
        hex_into(&mut body[mark + 18..mark + 34], 987_654_321);
        let msg = chat_alias_proto::cpim::parse_message(&body).expect("valid CPIM");
        assert_eq!(
            msg.headers.from.as_ref().unwrap().uri,
            "sip:anonymous1@anonymous.invalid"
        );
        let mut out = Vec::new();
        message_frame(&e, 3, 0x1234, &body, &mut out);
        let f = frame::scan(&out, &mut 0, 1 << 20).unwrap().unwrap();
        assert_eq!(f.len, out.len());
        assert_eq!(f.kind, Kind::Request);
        let finder = memmem::Finder::new(MARKER);
        assert_eq!(find_marker(&finder, &out), Some((7, 0x1234, 987_654_321)));
        // A bind has no marker.
        assert_eq!(find_marker(&finder, &sut::bind_frame(&e, "bind0001")), None);
        let mut a = Vec::new();
        answer(&e, b"t3x1234", &mut a);
        let f = frame::scan(&a, &mut 0, 1 << 20).unwrap().unwrap();
        assert_eq!((f.len, f.kind), (a.len(), Kind::Response));
    }
}
