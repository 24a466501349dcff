//! This process's connection to the relay's control socket (docs/control-protocol.md).
//! Opened lazily (never before the fork), one request at a time, every wait bounded by the timeout.
use chat_alias_proto::control::{self, Request, Response};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub struct RelayLink {
    path: String,
    timeout: Duration,
    conn: Option<BufReader<UnixStream>>,
    next_id: u64,
}

impl RelayLink {
    pub fn new(path: &str, timeout_ms: u32) -> Self {
        RelayLink {
            path: path.to_string(),
            timeout: Duration::from_millis(timeout_ms.into()),
            conn: None,
            next_id: 1,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends one request and waits (bounded) for its response. Any failure drops the connection so
    /// that a late answer is never read as the answer to the next request.
    pub fn call(&mut self, req: &Request) -> Result<Response, String> {
        let r = self.try_call(req);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn try_call(&mut self, req: &Request) -> Result<Response, String> {
        if self.conn.is_none() {
            let s = UnixStream::connect(&self.path)
                .map_err(|e| format!("connect {}: {e}", self.path))?;
            s.set_read_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        conn.get_mut()
            .write_all(&control::encode(req))
            .map_err(|e| format!("write: {e}"))?;
        let mut line = Vec::new();
        // The read timeout bounds each read; the line limit bounds the buffer.
        let n = Read::by_ref(conn)
            .take(control::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("relay closed the connection".into());
        }
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
