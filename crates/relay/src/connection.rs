//! One task per MSRP connection: read → [`Decoder`] → [`Switch`]; a writer task drains the
//! connection's outbox. The task never waits on another connection: everything it produces for
//! others goes into their outboxes, which refuse data rather than block.
//!
//! [`accept`] admits a connection (making room by evicting the oldest unbound one when a cap is
//! reached: `--max-connections`, `--max-unbound`, `--max-unbound-per-address`) and
//! registers it with the switch before its task starts; a [`ConnGuard`] then ends it in the switch
//! however the task ends — normally, by an early return, or by a panic.
//!
//! [`Switch`]: crate::switch::Switch
use crate::metrics::Metrics;
use crate::outbox::{self, CloseMode, Outbox, OutboxRx};
use crate::switch::{ConnId, ConnLimit};
use crate::Shared;
use chat_alias_proto::msrp::{Decoder, Event, Limits, MsrpError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long a connection being closed gracefully may take to write what is queued.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Control frames may exceed the data limit by this much before the peer is cut off.
pub const CONTROL_SLACK: usize = 1024 * 1024;
/// Most bytes read at once from a bound connection.
pub const READ_BUF: usize = 64 * 1024;
/// Most bytes read at once from a connection that has bound no session yet: all it may send
/// before binding is a request head (the decoder holds at most 16 KiB of it) and a small body,
/// so a crowd of idle or hostile unbound connections gets little work done per wake-up.
pub const UNBOUND_READ_BUF: usize = 4 * 1024;

thread_local! {
    /// The read buffer of every connection served by this thread. A read and the decoder's copy
    /// of what it read happen with no await in between, so one buffer serves all connections:
    /// a relay with thousands of connections does not hold a read buffer for each of them.
    static READ_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads what `r` has (at most `max` bytes) into the decoder. Ok(0) when nothing was ready;
/// Err when the peer closed or the read failed.
fn read_into(r: &OwnedReadHalf, max: usize, decoder: &mut Decoder) -> Result<usize, &'static str> {
    READ_SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < max {
            buf.resize(max, 0);
        }
        match r.try_read(buf.get_mut(..max).unwrap_or_default()) {
            Ok(0) => Err("peer closed"),
            Ok(n) => {
                decoder.feed(buf.get(..n).unwrap_or_default());
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(_) => Err("read error"),
        }
    })
}

/// Ends a connection in the switch when dropped: unbinds its session, stops its messages and
/// drops its state — whether the connection task returned, returned early, was cancelled, or
/// panicked (tokio drops a panicked task's future, and with it this guard).
pub struct ConnGuard {
    shared: Arc<Shared>,
    id: ConnId,
}

impl ConnGuard {
    pub fn new(shared: Arc<Shared>, id: ConnId) -> ConnGuard {
        ConnGuard { shared, id }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // A panic inside the switch released the lock while unwinding (parking_lot does not
        // poison), so this cannot deadlock on the task's own lock.
        self.shared.switch.lock().handle_closed(self.id);
    }
}

/// Admits an accepted connection and starts its task. When a cap on connections is reached, the
/// oldest unbound connection in its scope is closed to make room ([`Switch::admit`]); the new
/// one is refused (closed at once) only when none can be. The check and the registration with
/// the switch happen under one lock, so a burst of accepts cannot overshoot the limits. Returns
/// the limit that refused it, if any.
///
/// [`Switch::admit`]: crate::switch::Switch::admit
pub fn accept(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> Option<ConnLimit> {
    Metrics::add(&shared.metrics.connections_accepted, 1);
    let (outbox, orx) = Outbox::with_global_cap(
        shared.queue_bytes,
        CONTROL_SLACK,
        shared.max_queued_bytes,
        shared.metrics.clone(),
    );
    let id = {
        let mut sw = shared.switch.lock();
        if let Err(limit) = sw.admit(peer.ip()) {
            drop(sw);
            let counter = match limit {
                ConnLimit::Connections => &shared.metrics.refused_max_connections,
                ConnLimit::Unbound => &shared.metrics.refused_max_unbound,
                ConnLimit::PerAddress => &shared.metrics.refused_per_address,
            };
            Metrics::add(counter, 1);
            tracing::debug!(%peer, limit = limit.label(), "MSRP connection refused");
            // Dropping the stream closes it.
            drop(stream);
            return Some(limit);
        }
        let id = shared.next_conn_id();
        sw.handle_open_from(Instant::now(), id, peer.ip(), outbox.clone());
        id
    };
    // From here on the switch knows the connection: the guard ends it there, even if the task
    // never runs (runtime shutdown) or panics.
    let guard = ConnGuard::new(shared.clone(), id);
    tokio::spawn(serve(stream, peer, guard, outbox.subscribe(), orx));
    None
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    mut close: watch::Receiver<CloseMode>,
    orx: OutboxRx,
) {
    let id = guard.id;
    let shared = guard.shared.clone();
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    tracing::debug!(conn = id, %peer, "MSRP connection");
    let writer = tokio::spawn(outbox::run_writer(w, orx, CLOSE_GRACE));
    let why = read_loop(&r, &shared, id, peer, &mut close).await;
    // Unbind and close the outbox before waiting for the writer (it flushes, then ends).
    drop(guard);
    let _ = writer.await;
    tracing::debug!(conn = id, %peer, why, "MSRP connection ended");
}

/// Reads until the peer closes, framing is lost or the relay closes the connection.
async fn read_loop(
    r: &OwnedReadHalf,
    shared: &Shared,
    id: ConnId,
    peer: SocketAddr,
    close: &mut watch::Receiver<CloseMode>,
) -> &'static str {
    let mut decoder = Decoder::new(Limits::default()).lean_responses();
    let mut events = Vec::new();
    let mut bound = false;
    let mut spoke = false;
    loop {
        tokio::select! {
            ready = r.readable() => {
                if ready.is_err() {
                    return "read error";
                }
                let max = if bound { READ_BUF } else { UNBOUND_READ_BUF };
                match read_into(r, max, &mut decoder) {
                    Ok(0) => continue,
                    Ok(_) => {}
                    Err(why) => return why,
                }
                if !spoke {
                    spoke = true;
                    shared.switch.lock().handle_bytes(id);
                }
                match process(shared, id, peer, &mut decoder, &mut events) {
                    Some(b) => bound = b,
                    None => return "framing lost",
                }
                // Let the writers run before reading more: a fast sender must not fill its
                // recipients' queues faster than they are written out just because its socket
                // always has data (tokio's budget would allow many reads in a row).
                tokio::task::yield_now().await;
            }
            changed = close.changed() => {
                if changed.is_err() || *close.borrow() != CloseMode::Open {
                    return "closed by the relay";
                }
            }
        }
    }
}

/// What the decoder made of one read, handed to the switch in order.
type Decoded = Result<Event, MsrpError>;

/// Hands every complete event to the switch; None when framing is lost, else whether the
/// connection is bound.
///
/// The decoder runs before the switch's lock is taken, so connections served by other threads
/// decode at the same time; the events of one read are then handled in order under one lock.
/// `events` is the connection's scratch list (empty on return).
fn process(
    shared: &Shared,
    id: ConnId,
    peer: SocketAddr,
    decoder: &mut Decoder,
    events: &mut Vec<Decoded>,
) -> Option<bool> {
    loop {
        match decoder.poll() {
            Ok(None) => break,
            Ok(Some(ev)) => events.push(Ok(ev)),
            Err(e) => {
                let fatal = !matches!(e, MsrpError::Malformed { .. });
                events.push(Err(e));
                if fatal {
                    break;
                }
            }
        }
    }
    let now = Instant::now();
    let mut sw = shared.switch.lock();
    let mut ok = true;
    for ev in events.drain(..) {
        match ev {
            Ok(ev) => sw.handle_event(now, id, ev),
            Err(MsrpError::Malformed {
                transaction_id,
                reason,
            }) => sw.handle_malformed(id, transaction_id.as_deref(), &reason),
            Err(e) => {
                tracing::info!(conn = id, %peer, error = %e, "closing MSRP connection");
                ok = false;
                break;
            }
        }
    }
    // NICKNAME questions for the focus.
    shared.dispatch(&mut sw);
    let bound = sw.session_of(id).is_some();
    drop(sw);
    events.clear();
    ok.then_some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Participant;
    use crate::test_support;
    use chat_alias_proto::msrp::{encode, ByteRange, Continuation, Method, RequestHead};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SID: &str = "aaaaaaaaaaaaaaaaaaaa";
    const PEER: &str = "msrp://127.0.0.1:40000/peer;tcp";

    fn register(shared: &Shared) {
        shared
            .switch
            .lock()
            .join_at(
                Instant::now(),
                Participant {
                    session: SID.into(),
                    conference: "sip:lounge@im.example.net".into(),
                    uri: "sip:anonymous@anonymous.invalid".into(),
                    display_name: None,
                    anonymous: true,
                    peer_path: vec![PEER.into()],
                    accept_wrapped_types: vec![],
                    chatroom: vec![],
                    private_messages_allowed: false,
                },
            )
            .unwrap();
    }

    fn bind_request(shared: &Shared) -> Vec<u8> {
        let relay = shared.switch.lock().config().session_uri(SID);
        let mut h = RequestHead::new("bind0001", Method::Send, vec![relay], vec![PEER.into()]);
        h.message_id = Some("mbind".into());
        h.byte_range = Some(ByteRange {
            start: 1,
            end: Some(0),
            total: Some(0),
        });
        let mut out = Vec::new();
        encode::request_head(&h, &mut out);
        encode::end_line("bind0001", Continuation::End, false, &mut out);
        out
    }

    /// Finding: a panic in a connection's task must still unbind its session and drop its state.
    #[tokio::test]
    async fn a_panicking_connection_task_still_unbinds_its_session() {
        let shared = Arc::new(test_support::shared(test_support::config()));
        register(&shared);
        let (outbox, _orx) = Outbox::new(1 << 20, CONTROL_SLACK, shared.metrics.clone());
        shared
            .switch
            .lock()
            .handle_open(Instant::now(), 7, outbox.clone());
        let mut d = Decoder::new(Limits::default());
        d.feed(&bind_request(&shared));
        assert_eq!(
            process(
                &shared,
                7,
                "127.0.0.1:1".parse().unwrap(),
                &mut d,
                &mut Vec::new()
            ),
            Some(true)
        );
        assert_eq!(shared.switch.lock().session_of(7), Some(SID));
        let guard = ConnGuard::new(shared.clone(), 7);
        let task = tokio::spawn(async move {
            let _guard = guard;
            tokio::task::yield_now().await;
            panic!("a bug in the connection task");
        });
        assert!(task.await.unwrap_err().is_panic());
        let g = shared.switch.lock().gauges();
        assert_eq!((g.connections, g.bound_sessions), (0, 0));
        assert_eq!(shared.switch.lock().session_of(7), None);
        // The outbox was closed: the writer task would end.
        assert_ne!(outbox.close_mode(), CloseMode::Open);
        // The session may bind again on a new connection.
        let (o2, _r2) = Outbox::new(1 << 20, CONTROL_SLACK, shared.metrics.clone());
        shared.switch.lock().handle_open(Instant::now(), 8, o2);
        let mut d = Decoder::new(Limits::default());
        d.feed(&bind_request(&shared));
        assert_eq!(
            process(
                &shared,
                8,
                "127.0.0.1:1".parse().unwrap(),
                &mut d,
                &mut Vec::new()
            ),
            Some(true)
        );
    }

    async fn listen(shared: Arc<Shared>) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (s, peer) = l.accept().await.unwrap();
                accept(&shared, s, peer);
            }
        });
        addr
    }

    /// Whether the relay closes `s` within a second (EOF or reset), without sending anything.
    async fn closed_by_relay(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn settle(shared: &Shared, connections: usize) {
        for _ in 0..100 {
            if shared.switch.lock().gauges().connections == connections {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {connections} connections");
    }

    /// Finding (revised by issue 7): at the unbound cap the oldest unbound connection is closed
    /// to make room, so silent connections cannot lock a participant out; a connection that binds
    /// is out of reach; every eviction is counted.
    #[tokio::test]
    async fn at_the_unbound_cap_the_oldest_unbound_connection_is_evicted() {
        let mut cfg = test_support::config();
        cfg.max_unbound = 2;
        cfg.max_connections = 3;
        let shared = Arc::new(test_support::shared(cfg));
        register(&shared);
        let addr = listen(shared.clone()).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        settle(&shared, 1).await;
        let mut b = TcpStream::connect(addr).await.unwrap();
        settle(&shared, 2).await;
        // A third unbound connection: the oldest (a) makes room.
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_relay(&mut a).await, "oldest unbound evicted");
        settle(&shared, 2).await;
        // c is served: it binds.
        c.write_all(&bind_request(&shared)).await.unwrap();
        let mut resp = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut resp))
            .await
            .unwrap()
            .unwrap();
        assert!(
            resp[..n].starts_with(b"MSRP bind0001 200"),
            "{:?}",
            String::from_utf8_lossy(&resp[..n])
        );
        assert_eq!(shared.switch.lock().unbound(), 1);
        // Two more unbound: b (the oldest unbound) goes, the bound c stays.
        let _d = TcpStream::connect(addr).await.unwrap();
        settle(&shared, 3).await;
        let _e = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_relay(&mut b).await, "b evicted");
        let text = shared.metrics.render(&shared.switch.lock().gauges());
        assert!(
            text.contains("chat_alias_relay_unbound_evicted_total{reason=\"max_unbound\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("chat_alias_relay_unbound_evicted_total{reason=\"max_connections\"} 1\n")
        );
        assert!(
            text.contains("chat_alias_relay_connections_refused_total{reason=\"max_unbound\"} 0\n")
        );
        assert_eq!(shared.switch.lock().gauges().bound_sessions, 1);
        // The bound connection still works, and when it goes, its state goes (the drop guard).
        drop(c);
        settle(&shared, 2).await;
        assert_eq!(shared.switch.lock().gauges().bound_sessions, 0);
    }
}
