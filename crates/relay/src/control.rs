//! The control listener: the focus's join/leave requests (docs/control-protocol.md).
use crate::registry::{Participant, Registry};
use crate::Shared;
use chat_alias_proto::control::{self, Grant, Request, Response};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
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
                    grant: None,
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
        grant: None,
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
            let mut reg = shared.registry.lock();
            match reg.join(Participant::from(&j)) {
                Ok(()) => {
                    tracing::info!(session = %session, conference = %j.conference, uri = %j.uri, "participant joined");
                    Response {
                        id,
                        ok: true,
                        error: None,
                        grant: Some(Grant {
                            host: shared.advertise_host.clone(),
                            port: shared.advertise_port,
                            path: format!(
                                "msrp://{}:{}/{};tcp",
                                shared.uri_host(),
                                shared.advertise_port,
                                session
                            ),
                            max_size: shared.max_size,
                        }),
                    }
                }
                Err(e) => fail(e),
            }
        }
        Request::Leave { session, .. } => {
            let left = shared.registry.lock().leave(&session);
            if let Some(p) = left {
                tracing::info!(session = %session, conference = %p.conference, "participant left");
                shared.on_leave(&session);
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
