//! One task per MSRP connection: read → [`Decoder`] → [`Switch`]; a writer task drains the
//! connection's outbox. The task never waits on another connection: everything it produces for
//! others goes into their outboxes, which refuse data rather than block.
use crate::outbox::{self, CloseMode, Outbox};
use crate::switch::ConnId;
use crate::Shared;
use chat_alias_proto::msrp::{Decoder, Limits, MsrpError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a connection being closed gracefully may take to write what is queued.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Control frames may exceed the data limit by this much before the peer is cut off.
pub const CONTROL_SLACK: usize = 1024 * 1024;
const READ_BUF: usize = 64 * 1024;

pub async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let id = shared.next_conn_id();
    let _ = stream.set_nodelay(true);
    let (mut r, w) = stream.into_split();
    let (outbox, orx) = Outbox::new(shared.queue_bytes, CONTROL_SLACK, shared.metrics.clone());
    let mut close = outbox.subscribe();
    shared.switch.lock().handle_open(Instant::now(), id, outbox);
    tracing::debug!(conn = id, %peer, "MSRP connection");
    let writer = tokio::spawn(outbox::run_writer(w, orx, CLOSE_GRACE));
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = vec![0u8; READ_BUF];
    let why = 'conn: loop {
        tokio::select! {
            read = r.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break "peer closed",
                    Ok(n) => n,
                    Err(_) => break "read error",
                };
                decoder.feed(buf.get(..n).unwrap_or_default());
                if !process(&shared, id, peer, &mut decoder) {
                    break 'conn "framing lost";
                }
                // Let the writers run before reading more: a fast sender must not fill its
                // recipients' queues faster than they are written out just because its socket
                // always has data (tokio's budget would allow many reads in a row).
                tokio::task::yield_now().await;
            }
            changed = close.changed() => {
                if changed.is_err() || *close.borrow() != CloseMode::Open {
                    break "closed by the relay";
                }
            }
        }
    };
    shared.switch.lock().handle_closed(id);
    let _ = writer.await;
    tracing::debug!(conn = id, %peer, why, "MSRP connection ended");
}

/// Hands every complete event to the switch; false when framing is lost.
fn process(shared: &Shared, id: ConnId, peer: SocketAddr, decoder: &mut Decoder) -> bool {
    let now = Instant::now();
    let mut sw = shared.switch.lock();
    let ok = loop {
        match decoder.poll() {
            Ok(Some(ev)) => sw.handle_event(now, id, ev),
            Ok(None) => break true,
            Err(MsrpError::Malformed {
                transaction_id,
                reason,
            }) => sw.handle_malformed(id, transaction_id.as_deref(), &reason),
            Err(e) => {
                tracing::info!(conn = id, %peer, error = %e, "closing MSRP connection");
                break false;
            }
        }
    };
    // NICKNAME questions for the focus.
    shared.dispatch(&mut sw);
    ok
}
