//! The system under test, started as a child process: the relay (as `make run` and the end-to-end
//! tests start it, its control socket in a directory of its own) or the raw forwarder
//! (`chat-alias-bench forward`, this same binary). Participants are registered the way the
//! Kamailio module registers them (a `join` on the control socket per participant) and bind the
//! way a client does (RFC 4975 §5.4: a bodiless SEND, To-Path = the relay's session URI,
//! From-Path = the participant's own `a=path`).
use crate::frame::{self, Kind};
use chat_alias_proto::control::{self, Join, Request, Response};
use chat_alias_proto::msrp::{encode, ByteRange, Continuation, Method, RequestHead};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A started relay or forwarder; dropping it kills it (by its pid) and removes its directory.
pub struct Sut {
    child: Child,
    pub pid: u32,
    pub port: u16,
    dir: PathBuf,
    /// The relay's control socket; None for the forwarder.
    control: Option<PathBuf>,
    next_id: u64,
}

impl Drop for Sut {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One participant: what it writes in its paths and its CPIM From.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its own `a=path` (From-Path of what it sends).
    pub own: String,
    /// The relay's URI for its session (To-Path of what it sends).
    pub to: String,
    /// CPIM From: the identity the focus assigned.
    pub from: String,
    /// CPIM To of a message to everyone: the conference URI.
    pub conference: String,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn scratch_dir(what: &str) -> Result<PathBuf, String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "chat-alias-bench-{}-{what}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn wait_until(
    what: &str,
    child: &mut Child,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{what} exited at start: {st}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} not ready within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Sut {
    /// Starts the relay `bin` on a free port with `--control DIR/relay.sock --listen
    /// 127.0.0.1:PORT` and `extra`; logs in DIR/relay.log. No `--focus`: no Kamailio answers
    /// here, and a focus answering "no sessions" would make the relay drop every participant.
    pub fn relay(bin: &Path, extra: &[String]) -> Result<Sut, String> {
        let dir = scratch_dir("relay")?;
        let port = free_port()?;
        let control = dir.join("relay.sock");
        let log = std::fs::File::create(dir.join("relay.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .arg("--control")
            .arg(&control)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        wait_until("the relay", &mut child, || control.exists())?;
        Ok(Sut {
            child,
            pid,
            port,
            dir,
            control: Some(control),
            next_id: 1,
        })
    }

    /// Starts `chat-alias-bench forward` (this executable) on a free port.
    pub fn forwarder() -> Result<Sut, String> {
        let dir = scratch_dir("forward")?;
        let port = free_port()?;
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let log = std::fs::File::create(dir.join("forward.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["forward", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start the forwarder: {e}"))?;
        let pid = child.id();
        wait_until("the forwarder", &mut child, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(Sut {
            child,
            pid,
            port,
            dir,
            control: None,
            next_id: 1,
        })
    }

    pub fn is_relay(&self) -> bool {
        self.control.is_some()
    }

    /// Registers `n` participants of `conference` (through the control socket for the relay;
    /// for the forwarder the same URIs are made up, since it checks none of them).
    pub fn join(&mut self, conference: &str, n: usize) -> Result<Vec<Endpoint>, String> {
        let mut out = Vec::with_capacity(n);
        let mut joins = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let mut r = [0u8; 10];
            getrandom::fill(&mut r).map_err(|e| format!("no randomness: {e}"))?;
            let session: String = r.iter().map(|b| format!("{b:02x}")).collect();
            let own = format!("msrp://127.0.0.1:9/{session}c;tcp");
            let uri = format!("sip:anonymous{id}@anonymous.invalid");
            let name = format!("bench{id}");
            out.push(Endpoint {
                own: own.clone(),
                to: format!("msrp://127.0.0.1:{}/{session};tcp", self.port),
                from: chat_alias_proto::cpim::format_address(Some(&name), &uri),
                conference: format!("<{conference}>"),
            });
            joins.push(Request::Join(Join {
                id,
                version: control::VERSION,
                session,
                conference: conference.to_string(),
                uri,
                display_name: Some(name),
                anonymous: true,
                peer_path: vec![own],
                accept_wrapped_types: vec!["text/plain".into()],
                chatroom: vec!["nickname".into(), "private-messages".into()],
                private_messages_allowed: true,
            }));
        }
        let Some(control) = &self.control else {
            return Ok(out);
        };
        let stream = UnixStream::connect(control)
            .map_err(|e| format!("cannot connect to {}: {e}", control.display()))?;
        let mut w = stream.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(stream);
        // Pipelined in batches: the relay answers every request in order.
        for (bi, batch) in joins.chunks(256).enumerate() {
            let mut bytes = Vec::new();
            for j in batch {
                bytes.extend_from_slice(&control::encode(j));
            }
            w.write_all(&bytes)
                .map_err(|e| format!("control write: {e}"))?;
            for (j, ep) in batch.iter().zip(out[bi * 256..].iter_mut()) {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)
                    .map_err(|e| format!("control read: {e}"))?;
                let resp: Response = control::decode(&line).map_err(|e| e.to_string())?;
                let grant = match (resp.ok, resp.grant) {
                    (true, Some(g)) if resp.id == j.id() => g,
                    _ => return Err(format!("join refused: {}", String::from_utf8_lossy(&line))),
                };
                ep.to = grant.path;
            }
        }
        Ok(out)
    }
}

/// The bodiless SEND that binds a connection (what the client's `Session::bind` writes).
pub fn bind_frame(ep: &Endpoint, tid: &str) -> Vec<u8> {
    let mut h = RequestHead::new(tid, Method::Send, vec![ep.to.clone()], vec![ep.own.clone()]);
    h.message_id = Some(format!("b{tid}"));
    h.byte_range = Some(ByteRange {
        start: 1,
        end: Some(0),
        total: Some(0),
    });
    let mut out = Vec::new();
    encode::request_head(&h, &mut out);
    encode::end_line(tid, Continuation::End, false, &mut out);
    out
}

/// Connects to the SUT and binds `ep`. With the relay, waits for the 200 (anything else is an
/// error); the forwarder answers nothing, so the SEND is only written. Returns the stream and
/// any bytes read after the answer.
pub async fn connect_and_bind(
    port: u16,
    ep: &Endpoint,
    tid: &str,
    wait_answer: bool,
) -> Result<(TcpStream, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    let _ = s.set_nodelay(true);
    s.write_all(&bind_frame(ep, tid))
        .await
        .map_err(|e| format!("bind write: {e}"))?;
    if !wait_answer {
        return Ok((s, Vec::new()));
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut searched = 0;
        let mut at = 0;
        while let Some(f) =
            frame::scan(&buf[at..], &mut searched, 1 << 20).map_err(|e| e.to_string())?
        {
            let fr = &buf[at..at + f.len];
            if f.kind == Kind::Response && &fr[f.tid.clone()] == tid.as_bytes() {
                if !fr[f.what.clone()].starts_with(b"200") {
                    return Err(format!(
                        "bind of {} answered {}",
                        ep.to,
                        String::from_utf8_lossy(&fr[f.what.clone()])
                    ));
                }
                let rest = buf[at + f.len..].to_vec();
                return Ok((s, rest));
            }
            at += f.len;
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .map_err(|_| format!("bind of {}: no answer within 10 s", ep.to))?
            .map_err(|e| format!("bind read: {e}"))?;
        if n == 0 {
            return Err(format!("bind of {}: connection closed", ep.to));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Connects and binds every endpoint, at most 16 at a time (the relay's per-address cap on
/// connections that have not bound yet is 32 by default).
pub async fn bind_all(
    port: u16,
    eps: &[Endpoint],
    wait_answer: bool,
) -> Result<Vec<(TcpStream, Vec<u8>)>, String> {
    let mut out = Vec::with_capacity(eps.len());
    for (b, batch) in eps.chunks(16).enumerate() {
        let mut set = Vec::new();
        for (i, ep) in batch.iter().enumerate() {
            let ep = ep.clone();
            let tid = format!("bind{:06}x{i:02}", b);
            set.push(tokio::spawn(async move {
                connect_and_bind(port, &ep, &tid, wait_answer).await
            }));
        }
        for h in set {
            out.push(h.await.map_err(|e| e.to_string())??);
        }
    }
    Ok(out)
}
