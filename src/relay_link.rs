//! This process's connection to the relay's control socket (docs/control-protocol.md).
//! Opened lazily (never before the fork), one request at a time, and every request bounded by ONE
//! deadline (connect, write and read together): a stalled or overloaded relay costs a SIP worker at
//! most `relay_timeout_ms`, never more.
use chat_alias_proto::control::{self, Request, Response};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub struct RelayLink {
    path: String,
    timeout: Duration,
    conn: Option<UnixStream>,
    /// Bytes read past the end of the previous response (never expected, kept for correctness).
    pending: Vec<u8>,
    next_id: u64,
}

impl RelayLink {
    pub fn new(path: &str, timeout_ms: u32) -> Self {
        RelayLink {
            path: path.to_string(),
            timeout: Duration::from_millis(timeout_ms.into()),
            conn: None,
            pending: Vec::new(),
            next_id: 1,
        }
    }
}

impl crate::service::Relay for RelayLink {
    fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends one request and waits (bounded) for its response. Any failure drops the connection so
    /// that a late answer is never read as the answer to the next request.
    ///
    /// A kept connection may have died since its last use (the relay restarted): a request that fails
    /// on a reused connection is sent once more on a fresh one, within the same deadline. Requests are
    /// idempotent on the relay (a repeated join refreshes, a repeated leave is a no-op).
    fn call(&mut self, req: &Request) -> Result<Response, String> {
        let deadline = Instant::now() + self.timeout;
        let reused = self.conn.is_some();
        let mut r = self.try_call(req, deadline);
        if r.is_err() {
            self.conn = None;
            self.pending.clear();
            if reused && Self::remaining(deadline).is_ok() {
                r = self.try_call(req, deadline);
                if r.is_err() {
                    self.conn = None;
                    self.pending.clear();
                }
            }
        }
        r
    }
}

impl RelayLink {
    /// A non-blocking connect: with the relay's listen backlog full, a blocking connect on a Unix
    /// socket would wait indefinitely; here it fails at once and the join gets its 503.
    fn connect(&self) -> Result<UnixStream, String> {
        let s =
            Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = SockAddr::unix(&self.path).map_err(|e| format!("{}: {e}", self.path))?;
        match s.connect(&addr) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(format!("connect {}: relay backlog full", self.path))
            }
            Err(e) => return Err(format!("connect {}: {e}", self.path)),
        }
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        Ok(s.into())
    }

    fn remaining(deadline: Instant) -> Result<Duration, String> {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "relay did not answer in time".to_string())
    }

    fn try_call(&mut self, req: &Request, deadline: Instant) -> Result<Response, String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        conn.set_write_timeout(Some(Self::remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        conn.write_all(&control::encode(req))
            .map_err(|e| format!("write: {e}"))?;
        let mut line = std::mem::take(&mut self.pending);
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = line.iter().position(|&b| b == b'\n') {
                break i;
            }
            if line.len() > control::MAX_LINE {
                return Err("relay answer exceeds the line limit".into());
            }
            conn.set_read_timeout(Some(Self::remaining(deadline)?))
                .map_err(|e| e.to_string())?;
            match conn.read(&mut buf) {
                Ok(0) => return Err("relay closed the connection".into()),
                Ok(n) => line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        self.pending = line.split_off(end + 1);
        let resp: Response = control::decode(&line).map_err(|e| e.to_string())?;
        if resp.id != req.id() {
            return Err(format!(
                "response id {} does not match request {}",
                resp.id,
                req.id()
            ));
        }
        Ok(resp)
    }
}
