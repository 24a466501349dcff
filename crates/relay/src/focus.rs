//! The link to the focus for NICKNAME decisions (`--focus-rpc`): JSON-RPC 2.0 over Kamailio's
//! `jsonrpcs` Unix datagram socket, method `chat_alias.nickname`.
//!
//! One request per datagram, sent from a datagram socket of the relay's own (bound lazily, on the
//! first question: Kamailio may start after the relay); jsonrpcs answers each request with one
//! datagram, from its own socket to the sender's address (`jsonrpc_dgram_server` in Kamailio
//! 5.6: `recvfrom`, execute, `sendto` of the whole reply; a request that is not JSON gets no
//! answer at all, which the switch's timeout turns into 500). Errors raised with
//! `rpc->fault(code, message)` come back as `{"error":{"code":code,"message":"..."}}`.
//!
//! Answers are matched to questions by `id` only; datagrams that do not come from the focus's
//! socket are ignored.
use crate::switch::{AskId, FocusOutcome, NicknameAsk};
use crate::Shared;
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

/// The JSON-RPC method the module exports.
pub const METHOD: &str = "chat_alias.nickname";
/// jsonrpcs reads requests into a buffer of this size (JSONRPC_DGRAM_BUF_SIZE); its answers are
/// smaller than a datagram can be.
const MAX_DATAGRAM: usize = 65536;

/// Where the relay binds its reply socket: next to its control socket.
pub fn reply_path(control: &Path) -> PathBuf {
    let mut p = control.as_os_str().to_owned();
    p.push(".rpc");
    PathBuf::from(p)
}

/// The JSON-RPC request for a question.
pub fn request(ask: &NicknameAsk) -> Vec<u8> {
    let v = json!({
        "jsonrpc": "2.0",
        "method": METHOD,
        "params": [ask.conference, ask.session, ask.nickname],
        "id": ask.id,
    });
    v.to_string().into_bytes()
}

/// Reads one answer: the id it answers and what the focus said. None when the datagram is not a
/// JSON-RPC response with a usable id (nothing can be matched to it).
pub fn parse_reply(datagram: &[u8]) -> Option<(AskId, FocusOutcome)> {
    let v: Value = serde_json::from_slice(datagram).ok()?;
    let id = match v.get("id")? {
        // jsonrpcs echoes a numeric id as a double ("%d", or "%.0f" beyond 32 bits).
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        })?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let code_of = |o: &Value| o.get("code").and_then(Value::as_i64);
    let outcome = if let Some(err) = v.get("error") {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match code_of(err).and_then(|c| u16::try_from(c).ok()) {
            Some(code) => FocusOutcome::Refused { code, message },
            None => FocusOutcome::Failed(format!("focus error {:?}: {message}", code_of(err))),
        }
    } else if let Some(res) = v.get("result") {
        match code_of(res) {
            Some(200) => match res.get("display_name") {
                Some(Value::String(s)) if s.is_empty() => FocusOutcome::Named(None),
                Some(Value::String(s)) => FocusOutcome::Named(Some(s.clone())),
                _ => FocusOutcome::Failed("200 without a display_name".into()),
            },
            Some(c) => match u16::try_from(c) {
                Ok(code) => FocusOutcome::Refused {
                    code,
                    message: String::new(),
                },
                Err(_) => FocusOutcome::Failed(format!("result code {c}")),
            },
            None => FocusOutcome::Failed("result without a code".into()),
        }
    } else {
        FocusOutcome::Failed("neither result nor error".into())
    };
    Some((id, outcome))
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

fn fail(shared: &Shared, id: AskId, why: String) {
    shared
        .switch
        .lock()
        .handle_focus_answer(Instant::now(), id, FocusOutcome::Failed(why));
}

/// Sends one question; a failure to send is answered at once (never waits: a full socket buffer
/// on Kamailio's side is a failure like any other).
fn send(link: &Link, focus: &Path, shared: &Shared, ask: NicknameAsk) {
    let bytes = request(&ask);
    match link.tx.send_to(&bytes, focus) {
        Ok(n) if n == bytes.len() => {
            tracing::debug!(id = ask.id, conn = ask.conn, tid = %ask.transaction_id, "NICKNAME question sent to the focus");
        }
        Ok(n) => fail(
            shared,
            ask.id,
            format!("short send to the focus ({n} bytes)"),
        ),
        Err(e) => fail(
            shared,
            ask.id,
            format!("cannot reach the focus at {}: {e}", focus.display()),
        ),
    }
}

/// The focus link: sends the switch's questions and feeds the answers back to it.
pub async fn run(
    mut asks: mpsc::UnboundedReceiver<NicknameAsk>,
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
                fail(
                    &shared,
                    first.id,
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
                        match parse_reply(data) {
                            Some((id, outcome)) => shared
                                .switch
                                .lock()
                                .handle_focus_answer(Instant::now(), id, outcome),
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

    fn ask() -> NicknameAsk {
        NicknameAsk {
            id: 7,
            conn: 1,
            transaction_id: "t1".into(),
            session: "abcdefghijklmnop".into(),
            conference: "sip:lounge@im.example.net".into(),
            nickname: "Ro\"bert".into(),
        }
    }

    #[test]
    fn request_is_one_json_rpc_object() {
        let v: Value = serde_json::from_slice(&request(&ask())).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], "chat_alias.nickname");
        assert_eq!(
            v["params"],
            json!(["sip:lounge@im.example.net", "abcdefghijklmnop", "Ro\"bert"])
        );
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn replies_as_jsonrpcs_writes_them() {
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"},"id":7}"#
            ),
            Some((7, FocusOutcome::Named(Some("Robert".into()))))
        );
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":""},"id":8}"#),
            Some((8, FocusOutcome::Named(None)))
        );
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":425,"message":"nickname in use"},"id":9}"#
            ),
            Some((
                9,
                FocusOutcome::Refused {
                    code: 425,
                    message: "nickname in use".into()
                }
            ))
        );
        // jsonrpcs's own faults: an unknown method is 500 "Method Not Found".
        assert!(matches!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":500,"message":"Method Not Found"},"id":10}"#
            ),
            Some((10, FocusOutcome::Refused { code: 500, .. }))
        ));
        assert!(matches!(
            parse_reply(
                br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Execution Error"},"id":11}"#
            ),
            Some((11, FocusOutcome::Failed(_)))
        ));
        // A big id printed with "%.0f", and a string id.
        assert_eq!(
            parse_reply(
                br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"x"},"id":4294967296}"#
            )
            .map(|r| r.0),
            Some(4294967296)
        );
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200,"display_name":"x"},"id":"12"}"#)
                .map(|r| r.0),
            Some(12)
        );
        assert!(matches!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200},"id":13}"#),
            Some((13, FocusOutcome::Failed(_)))
        ));
        assert!(matches!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{},"id":14}"#),
            Some((14, FocusOutcome::Failed(_)))
        ));
        assert_eq!(
            parse_reply(br#"{"jsonrpc":"2.0","result":{"code":200}}"#),
            None
        );
        assert_eq!(parse_reply(b"not json"), None);
    }

    /// The driver against a fake jsonrpcs socket: the question arrives as JSON-RPC from the
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
            focus: true,
            focus_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_unbound: 256,
        };
        let metrics = Metrics::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            switch: Mutex::new(Switch::new(cfg.clone(), switch::os_ids(), metrics.clone())),
            metrics: metrics.clone(),
            advertise_host: "127.0.0.1".into(),
            advertise_port: 2855,
            max_size: 1 << 20,
            queue_bytes: 1 << 20,
            focus: Some(tx),
            next_conn: Default::default(),
        });
        let task = tokio::spawn(run(rx, focus_path.clone(), reply.clone(), shared.clone()));
        let sid = "0123456789abcdef0123".to_string();
        let peer = "msrp://127.0.0.1:40000/peer;tcp".to_string();
        shared
            .switch
            .lock()
            .join(Participant {
                session: sid.clone(),
                conference: "sip:lounge@im.example.net".into(),
                uri: "sip:anonymous@anonymous.invalid".into(),
                display_name: Some("bob".into()),
                anonymous: true,
                peer_path: vec![peer.clone()],
                accept_wrapped_types: vec![],
                chatroom: vec!["nickname".into()],
                private_messages_allowed: false,
            })
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
        assert_eq!(q["method"], METHOD);
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
        // jsonrpcs answers from its own socket to the sender's address.
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
