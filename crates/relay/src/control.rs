//! The control listener: the focus's join/leave requests (docs/control-protocol.md).
use crate::registry::{Participant, Registry};
use crate::Shared;
use chat_alias_proto::control::{self, Grant, Request, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most sessions one `idle` answer lists: 64 entries of at most ~400 bytes (session id ≤ 64,
/// conference URI ≤ 255) stay far below the control line limit.
pub const MAX_IDLE_PER_ANSWER: usize = 64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let mut first = true;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if first {
                    // Kamailio is up (it may have started after the relay): rebuild the registry
                    // from its alias table (docs/control-protocol.md, "Rebuilding the relay").
                    first = false;
                    shared.request_resync();
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, shared).await {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(control::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let resp = match control::decode::<Request>(&line) {
            Ok(req) => handle(&shared, req),
            Err(e) => {
                tracing::warn!(error = %e, "bad control request; closing the connection");
                let resp = Response {
                    id: 0,
                    ok: false,
                    error: Some(e.to_string()),
                    ..Default::default()
                };
                w.write_all(&control::encode(&resp)).await?;
                return Ok(());
            }
        };
        w.write_all(&control::encode(&resp)).await?;
    }
}

use tokio::io::AsyncReadExt;

/// Applies one request to the registry and says what happened.
pub fn handle(shared: &Shared, req: Request) -> Response {
    let id = req.id();
    let fail = |e: String| Response {
        id,
        ok: false,
        error: Some(e),
        ..Default::default()
    };
    match req {
        Request::Ping { .. } => Response {
            id,
            ok: true,
            ..Default::default()
        },
        Request::Join(j) => {
            if j.version != control::VERSION {
                return fail(format!(
                    "unsupported control protocol version {}",
                    j.version
                ));
            }
            let session = j.session.clone();
            let mut sw = shared.switch.lock();
            match sw.join_at(Instant::now(), Participant::from(&j)) {
                Ok(()) => {
                    tracing::info!(session = %session, conference = %j.conference, uri = %j.uri, "participant joined");
                    Response {
                        id,
                        ok: true,
                        error: None,
                        grant: Some(Grant {
                            host: shared.advertise_host.clone(),
                            port: shared.advertise_port,
                            path: sw.config().session_uri(&session),
                            max_size: shared.max_size,
                        }),
                        ..Default::default()
                    }
                }
                Err(e) => fail(e),
            }
        }
        Request::Idle {
            bind_timeout_ms,
            gone_timeout_ms,
            max,
            ..
        } => {
            // Bounded whatever the module asks: the answer must fit in one control line.
            let max = (max as usize).min(MAX_IDLE_PER_ANSWER);
            let idle = shared.switch.lock().idle(
                Instant::now(),
                Duration::from_millis(bind_timeout_ms),
                Duration::from_millis(gone_timeout_ms),
                max,
            );
            Response {
                id,
                ok: true,
                idle,
                ..Default::default()
            }
        }
        Request::Leave { session, .. } => {
            if let Some(p) = shared.on_leave(&session) {
                tracing::info!(session = %session, conference = %p.conference, "participant left");
            }
            Response {
                id,
                ok: true,
                ..Default::default()
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_registry_is_send(r: Registry) -> impl Send {
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_alias_proto::control::Join;

    fn shared() -> Shared {
        crate::test_support::shared(crate::test_support::config())
    }

    fn join(id: u64, session: &str, version: u32) -> Request {
        Request::Join(Join {
            id,
            version,
            session: session.into(),
            conference: "sip:lounge@im.example.net".into(),
            uri: "sip:anonymous@anonymous.invalid".into(),
            display_name: Some("bob".into()),
            anonymous: true,
            peer_path: vec!["msrp://192.0.2.1:7654/abc;tcp".into()],
            accept_wrapped_types: vec!["text/plain".into()],
            chatroom: vec!["private-messages".into()],
            private_messages_allowed: true,
        })
    }

    #[test]
    fn join_grants_the_session_uri_and_leave_is_idempotent() {
        let s = shared();
        let r = handle(&s, join(1, "0123456789abcdef0123", control::VERSION));
        assert!(r.ok, "{r:?}");
        let g = r.grant.unwrap();
        assert_eq!(g.path, "msrp://192.0.2.10:2855/0123456789abcdef0123;tcp");
        assert_eq!(
            (g.host.as_str(), g.port, g.max_size),
            ("192.0.2.10", 2855, 1 << 24)
        );
        assert_eq!(s.switch.lock().gauges().participants, 1);
        for id in [2, 3] {
            let r = handle(
                &s,
                Request::Leave {
                    id,
                    session: "0123456789abcdef0123".into(),
                },
            );
            assert!(r.ok && r.id == id);
        }
        assert_eq!(s.switch.lock().gauges().participants, 0);
    }

    #[test]
    fn refuses_other_versions_and_bad_session_ids() {
        let s = shared();
        assert!(!handle(&s, join(1, "0123456789abcdef0123", 99)).ok);
        assert!(!handle(&s, join(2, "short", control::VERSION)).ok);
        assert!(handle(&s, Request::Ping { id: 3 }).ok);
    }
}
