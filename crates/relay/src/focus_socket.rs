//! The relay's client of the module's focus socket (`--focus`): the datagram link that carries
//! the switch's questions (NICKNAME decisions, resync pages, convergence batches; see
//! `chat_alias_proto::control::focus_socket` for the messages) and feeds the answers back. What
//! to ask and what an answer means is the switch's business (`switch::registry_sync`); this
//! file only moves datagrams.
//!
//! One request per datagram, sent from a datagram socket of the relay's own (bound lazily, on the
//! first question: Kamailio may start after the relay); the module answers each request with one
//! datagram, from its socket to the sender's address. Answers are matched to questions by `id`
//! only; datagrams that do not come from the focus socket are ignored.
use crate::switch::AskId;
use crate::Shared;
use chat_alias_proto::control::focus_socket::{Question, Reply, MAX_DATAGRAM};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

/// One question for the link: its id and what it asks.
pub type Ask = (AskId, Question);

/// Where the relay binds its reply socket: next to its control socket.
pub fn reply_path(control: &Path) -> PathBuf {
    let mut p = control.as_os_str().to_owned();
    p.push(".rpc");
    PathBuf::from(p)
}

/// The reply socket: answers are read through tokio; questions are sent through a duplicate of
/// the same socket in plain non-blocking mode, so that a send that would block fails at once
/// (tokio's `try_send_to` also refuses before the first readiness event, and waiting for
/// writability on an unconnected datagram socket whose peer is full may never end).
struct Link {
    rx: UnixDatagram,
    tx: std::os::unix::net::UnixDatagram,
}

/// Binds the reply socket, replacing a stale one (a socket left by an earlier run; anything else
/// at that path is not ours and is left alone).
fn bind(path: &Path) -> std::io::Result<Link> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let s = std::os::unix::net::UnixDatagram::bind(path)?;
    // Kamailio must be able to write its answers here (it may run as another user of the group).
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    s.set_nonblocking(true)?;
    let tx = s.try_clone()?;
    Ok(Link {
        rx: UnixDatagram::from_std(s)?,
        tx,
    })
}

/// Whether a datagram's sender is the focus's socket.
fn from_focus(from: &tokio::net::unix::SocketAddr, focus: &Path) -> bool {
    let Some(p) = from.as_pathname() else {
        return false;
    };
    if p == focus {
        return true;
    }
    // The same socket named another way (relative path, symlinked directory).
    match (std::fs::metadata(p), std::fs::metadata(focus)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Tells the switch that question `id` cannot be asked, and carries out what follows.
fn report_unsent(shared: &Shared, id: AskId, why: String) {
    let mut sw = shared.switch.lock();
    sw.handle_focus_unreachable(Instant::now(), id, why);
    shared.dispatch(&mut sw);
}

/// Sends one question; a failure to send is reported at once (never waits: a full socket buffer
/// on the module's side is a failure like any other).
fn send(link: &Link, focus: &Path, shared: &Shared, (id, question): Ask) {
    let bytes = question.encode(id);
    match link.tx.send_to(&bytes, focus) {
        Ok(n) if n == bytes.len() => {
            tracing::debug!(
                id,
                method = question.method().name(),
                "question sent to the focus"
            );
        }
        Ok(n) => report_unsent(shared, id, format!("short send to the focus ({n} bytes)")),
        Err(e) => report_unsent(
            shared,
            id,
            format!("cannot reach the focus at {}: {e}", focus.display()),
        ),
    }
}

/// The focus link: sends the switch's questions and feeds the answers back to it.
pub async fn run(
    mut asks: mpsc::UnboundedReceiver<Ask>,
    focus: PathBuf,
    reply: PathBuf,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // Nothing is bound until there is something to ask (and again after a failed bind).
        let Some(first) = asks.recv().await else {
            return;
        };
        let link = match bind(&reply) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %reply.display(), error = %e, "cannot bind the focus reply socket");
                report_unsent(
                    &shared,
                    first.0,
                    format!("cannot bind {}: {e}", reply.display()),
                );
                continue;
            }
        };
        tracing::info!(focus = %focus.display(), reply = %reply.display(), "focus link ready");
        send(&link, &focus, &shared, first);
        loop {
            tokio::select! {
                ask = asks.recv() => match ask {
                    Some(a) => send(&link, &focus, &shared, a),
                    None => return,
                },
                got = link.rx.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        if !from_focus(&from, &focus) {
                            tracing::warn!(from = ?from, "datagram not from the focus; ignored");
                            continue;
                        }
                        let data = buf.get(..n).unwrap_or_default();
                        match Reply::parse(data) {
                            Some(r) => {
                                let mut sw = shared.switch.lock();
                                sw.handle_focus_reply(Instant::now(), r);
                                shared.dispatch(&mut sw);
                            }
                            None => tracing::warn!(
                                answer = %String::from_utf8_lossy(data.get(..data.len().min(200)).unwrap_or_default()),
                                "unusable answer from the focus; ignored"
                            ),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "focus reply socket error");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The driver against a fake focus socket: the question arrives as JSON-RPC from the
    /// relay's reply socket (a stale one replaced), a forged answer from another socket is
    /// ignored, the focus's answer renames, and an unreachable focus fails at once.
    #[tokio::test]
    async fn driver_asks_over_datagrams_and_feeds_answers_back() {
        use crate::metrics::Metrics;
        use crate::outbox::Outbox;
        use crate::registry::Participant;
        use crate::switch::{self, Switch};
        use chat_alias_proto::msrp::{
            encode, ByteRange, Continuation, Decoder, Limits, Method, RequestHead,
        };
        use parking_lot::Mutex;
        use std::sync::atomic::Ordering;
        use std::time::Duration;

        let dir = std::env::temp_dir().join(format!("relay-focus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let focus_path = dir.join("kamailio_rpc.sock");
        let reply = reply_path(&dir.join("relay.sock"));
        // A stale reply socket from an earlier run.
        drop(std::os::unix::net::UnixDatagram::bind(&reply).unwrap());
        let fake = UnixDatagram::bind(&focus_path).unwrap();
        let cfg = switch::Config {
            host: "127.0.0.1".into(),
            port: 2855,
            max_size: 1 << 20,
            bind_timeout: Duration::from_secs(5),
            chunk_timeout: Duration::from_secs(540),
            congestion_timeout: Duration::from_secs(30),
            queue_bytes: 1 << 20,
            nicknames: true,
            focus_socket: true,
            focus_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_unbound: 256,
            max_unbound_per_address: 32,
            first_byte_timeout: Duration::from_secs(5),
        };
        let metrics = Metrics::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            switch: Mutex::new(Switch::new(
                cfg.clone(),
                crate::ids::thread_ids(),
                metrics.clone(),
            )),
            metrics: metrics.clone(),
            advertise_host: "127.0.0.1".into(),
            advertise_port: 2855,
            max_size: 1 << 20,
            queue_bytes: 1 << 20,
            max_queued_bytes: usize::MAX,
            focus_link: Some(tx),
            next_conn: Default::default(),
        });
        let task = tokio::spawn(run(rx, focus_path.clone(), reply.clone(), shared.clone()));
        let sid = "0123456789abcdef0123".to_string();
        let peer = "msrp://127.0.0.1:40000/peer;tcp".to_string();
        shared
            .switch
            .lock()
            .join_at(
                Instant::now(),
                Participant {
                    session: sid.clone(),
                    conference: "sip:lounge@im.example.net".into(),
                    uri: "sip:anonymous@anonymous.invalid".into(),
                    display_name: Some("bob".into()),
                    anonymous: true,
                    peer_path: vec![peer.clone()],
                    accept_wrapped_types: vec![],
                    chatroom: vec!["nickname".into()],
                    private_messages_allowed: false,
                },
            )
            .unwrap();
        let (outbox, _orx) = Outbox::new(1 << 20, 1 << 20, metrics.clone());
        shared.switch.lock().handle_open(Instant::now(), 1, outbox);
        let feed = |bytes: Vec<u8>| {
            let mut d = Decoder::new(Limits::default());
            d.feed(&bytes);
            let mut sw = shared.switch.lock();
            while let Ok(Some(ev)) = d.poll() {
                sw.handle_event(Instant::now(), 1, ev);
            }
            shared.dispatch(&mut sw);
        };
        let request = |tid: &str, method: Method, nick: Option<&str>| {
            let send = method == Method::Send;
            let mut h =
                RequestHead::new(tid, method, vec![cfg.session_uri(&sid)], vec![peer.clone()]);
            if send {
                h.message_id = Some(format!("m{tid}"));
                h.byte_range = Some(ByteRange {
                    start: 1,
                    end: Some(0),
                    total: Some(0),
                });
            }
            h.use_nickname = nick.map(str::to_string);
            let mut out = Vec::new();
            encode::request_head(&h, &mut out);
            encode::end_line(tid, Continuation::End, false, &mut out);
            out
        };
        feed(request("bind0001", Method::Send, None));
        assert_eq!(shared.switch.lock().session_of(1), Some(sid.as_str()));
        feed(request("nick0001", Method::Nickname, Some("Robert")));
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), fake.recv_from(&mut buf))
            .await
            .expect("a question")
            .unwrap();
        assert_eq!(from.as_pathname(), Some(reply.as_path()));
        let q: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(q["method"], "chat_alias.nickname");
        assert_eq!(
            q["params"],
            json!(["sip:lounge@im.example.net", sid, "Robert"])
        );
        let id = q["id"].as_u64().unwrap();
        // A forged answer from another socket is ignored.
        let other = UnixDatagram::bind(dir.join("other.sock")).unwrap();
        let forged = json!({"jsonrpc":"2.0","result":{"code":200,"display_name":"Evil"},"id":id});
        other
            .send_to(forged.to_string().as_bytes(), &reply)
            .await
            .unwrap();
        // The module answers from its own socket to the sender's address.
        let answer = json!({"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"},"id":id});
        fake.send_to(answer.to_string().as_bytes(), &reply)
            .await
            .unwrap();
        let name = || {
            shared
                .switch
                .lock()
                .registry
                .get(&sid)
                .and_then(|p| p.display_name.clone())
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while name().as_deref() != Some("Robert") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(name().as_deref(), Some("Robert"));
        assert_eq!(shared.switch.lock().focus_pending(), 0);
        // The focus goes away: the question fails at once, not after the timeout.
        drop(fake);
        std::fs::remove_file(&focus_path).unwrap();
        feed(request("nick0002", Method::Nickname, Some("Bobby")));
        let deadline = Instant::now() + Duration::from_secs(2);
        while metrics.focus_failures.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.focus_failures.load(Ordering::Relaxed), 1);
        assert_eq!(shared.switch.lock().focus_pending(), 0);
        assert_eq!(name().as_deref(), Some("Robert"));
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reply_path_is_next_to_the_control_socket() {
        assert_eq!(
            reply_path(Path::new("/run/chat-alias/relay.sock")),
            PathBuf::from("/run/chat-alias/relay.sock.rpc")
        );
    }
}
