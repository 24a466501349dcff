//! The control listener: the focus's join/leave requests (docs/control-protocol.md).
//!
//! Whoever may write to this socket decides who is in which conference under which identity, so
//! it is the relay's most sensitive interface: it is created mode 0600 whatever the umask
//! ([`bind_private`]), and a peer whose uid (SO_PEERCRED) is not allowed is closed unanswered.
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::Shared;
use chat_alias_proto::control::{self, Grant, Request, Response};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most sessions one `idle` answer lists: 64 entries of at most ~400 bytes (session id ≤ 64,
/// conference URI ≤ 255) stay far below the control line limit.
pub const MAX_IDLE_PER_ANSWER: usize = 64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Creates the control socket at `path`, mode 0600 whatever the process umask, and returns it
/// with the relay's own uid (the owner of what it creates).
///
/// The socket is bound inside a fresh directory of mode 0700, made 0600 there, and only then
/// renamed into place: at no moment does a socket exist at `path` (or anywhere another user can
/// reach) with a wider mode. No umask change is needed, which would affect the whole process.
pub fn bind_private(path: &Path) -> Result<(std::os::unix::net::UnixListener, u32), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent.join(format!(".ctl{}", std::process::id()));
    // Left over by an earlier process with the same pid (a crash): ours to remove.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = (|| {
        let uid = std::fs::metadata(&dir)
            .map_err(|e| format!("cannot stat {}: {e}", dir.display()))?
            .uid();
        let tmp = dir.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&tmp)
            .map_err(|e| format!("cannot listen on control socket {}: {e}", path.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot chmod control socket: {e}"))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot move control socket to {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        Ok((listener, uid))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Whether a control peer may be served: its uid (from SO_PEERCRED; None when the kernel gave
/// none) is one of `allowed`.
pub fn peer_allowed(uid: Option<u32>, allowed: &[u32]) -> bool {
    uid.is_some_and(|u| allowed.contains(&u))
}

/// Serves the control socket on a thread of its own (with its own single-threaded runtime), so
/// that joins and leaves never wait behind the MSRP connections' tasks. Dropping the returned
/// sender stops the thread.
pub fn spawn(
    listener: std::os::unix::net::UnixListener,
    shared: Arc<Shared>,
    allowed: Vec<u32>,
) -> std::io::Result<tokio::sync::oneshot::Sender<()>> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match UnixListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "control socket unusable");
                        return;
                    }
                };
                tokio::select! {
                    _ = serve(listener, shared, allowed) => {}
                    _ = stop_rx => {}
                }
            });
        })?;
    Ok(stop_tx)
}

pub async fn serve(listener: UnixListener, shared: Arc<Shared>, allowed: Vec<u32>) {
    let mut first = true;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let cred = stream.peer_cred().ok();
                let uid = cred.as_ref().map(|c| c.uid());
                if !peer_allowed(uid, &allowed) {
                    Metrics::add(&shared.metrics.control_refused, 1);
                    tracing::warn!(
                        uid = ?uid,
                        pid = ?cred.and_then(|c| c.pid()),
                        "control connection refused: peer uid not allowed (--control-allow-uid)"
                    );
                    drop(stream);
                    continue;
                }
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
            match sw.join_at(Instant::now(), j.record()) {
                Ok(()) => {
                    // The module writes the one INFO line per join (with this session id).
                    tracing::debug!(session = %session, conference = %j.conference, uri = %j.uri, "participant joined");
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
                // The module writes the one INFO line per leave (with this session id).
                tracing::debug!(session = %session, conference = %p.conference, "participant left");
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
    fn only_allowed_uids_are_served() {
        assert!(peer_allowed(Some(0), &[0]));
        assert!(peer_allowed(Some(1000), &[0, 1000]));
        assert!(!peer_allowed(Some(65534), &[0, 1000]));
        // No credentials from the kernel: refused.
        assert!(!peer_allowed(None, &[0]));
        assert!(!peer_allowed(Some(0), &[]));
    }

    #[test]
    fn the_control_socket_is_created_0600_and_owned_by_the_relay() {
        let dir = std::env::temp_dir().join(format!("ctl-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A world-writable directory, as a careless deployment might have.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.join("relay.sock");
        let (_l, uid) = bind_private(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), uid);
        // Only the socket is left behind: the private directory it was made in is gone.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("relay.sock")]);
        // It accepts connections at its final path.
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_other_versions_and_bad_session_ids() {
        let s = shared();
        assert!(!handle(&s, join(1, "0123456789abcdef0123", 99)).ok);
        assert!(!handle(&s, join(2, "short", control::VERSION)).ok);
        assert!(handle(&s, Request::Ping { id: 3 }).ok);
    }
}
