//! A frame on its way to one connection: its own head and end-line, and a body that may be
//! shared with the copies of the same chunk queued for other recipients.
//!
//! A message to a room of N is N copies of every chunk. Only the head (To-Path, Message-ID,
//! Byte-Range, transaction id) differs between copies, so the body is one reference-counted
//! buffer ([`Body`]) and each copy adds a few hundred bytes of its own; the writer hands head, body
//! and end-line to the kernel in one vectored write instead of concatenating them.
//!
//! Memory accounting: the relay-wide queued-bytes count ([`Metrics::queued_bytes`]) counts each
//! frame's own bytes, and each body once — when it is first queued ([`Body::charge`]), until the
//! last frame holding it is written or dropped.
use crate::metrics::Metrics;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// One chunk's payload, shared by every copy of it.
#[derive(Clone)]
pub struct Body(Arc<BodyInner>);

struct BodyInner {
    data: Vec<u8>,
    /// Set when the body is first queued: the counter it was added to (and is taken off again
    /// when the last reference goes).
    charged: OnceLock<Arc<Metrics>>,
}

impl Drop for BodyInner {
    fn drop(&mut self) {
        if let Some(m) = self.charged.get() {
            m.queued_bytes.fetch_sub(self.data.len(), Ordering::Relaxed);
        }
    }
}

impl Body {
    pub fn new(data: Vec<u8>) -> Body {
        Body(Arc::new(BodyInner {
            data,
            charged: OnceLock::new(),
        }))
    }

    pub fn len(&self) -> usize {
        self.0.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.data.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0.data
    }

    /// Whether the body is already counted in the relay-wide queued bytes.
    pub fn is_charged(&self) -> bool {
        self.0.charged.get().is_some()
    }

    /// Counts the body in `metrics.queued_bytes` (once, whatever the number of copies queued);
    /// it is taken off when the last reference is dropped.
    pub fn charge(&self, metrics: &Arc<Metrics>) {
        if self.0.charged.set(metrics.clone()).is_ok() {
            metrics
                .queued_bytes
                .fetch_add(self.0.data.len(), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({} bytes)", self.len())
    }
}

/// A whole MSRP frame: its head, then the (shared) body, then its end-line.
///
/// Head and end-line are one buffer (`own`, split at `head_len`): a copy costs one allocation of
/// its own, whatever the body.
#[derive(Debug, Clone)]
pub struct Frame {
    own: Vec<u8>,
    head_len: usize,
    body: Option<Body>,
}

impl Frame {
    /// A frame whose bytes are all its own (responses, REPORTs, aborts).
    pub fn whole(bytes: Vec<u8>) -> Frame {
        Frame {
            head_len: bytes.len(),
            own: bytes,
            body: None,
        }
    }

    /// A frame whose first `head_len` bytes of `own` come before `body`, the rest after it.
    /// A `head_len` beyond `own` puts all of `own` first.
    pub fn around(own: Vec<u8>, head_len: usize, body: Option<Body>) -> Frame {
        Frame {
            head_len: head_len.min(own.len()),
            own,
            body,
        }
    }

    /// A frame from its three parts (tests of this crate, the fuzz targets).
    pub fn from_parts(head: Vec<u8>, body: Option<Body>, tail: &[u8]) -> Frame {
        let head_len = head.len();
        let mut own = head;
        own.extend_from_slice(tail);
        Frame::around(own, head_len, body)
    }

    /// The shared body, if any.
    pub fn body(&self) -> Option<&Body> {
        self.body.as_ref()
    }

    /// The bytes before the body.
    pub fn head(&self) -> &[u8] {
        self.own.get(..self.head_len).unwrap_or_default()
    }

    /// The bytes after the body (the end-line of a data frame).
    pub fn tail(&self) -> &[u8] {
        self.own.get(self.head_len..).unwrap_or_default()
    }

    /// The frame's length on the wire.
    pub fn len(&self) -> usize {
        self.own_len() + self.body.as_ref().map_or(0, Body::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes that belong to this frame alone (head and end-line).
    pub fn own_len(&self) -> usize {
        self.own.len()
    }

    /// The frame's pieces, for a vectored write (empty pieces left out).
    pub fn slices(&self) -> impl Iterator<Item = IoSlice<'_>> {
        [
            Some(self.head()),
            self.body.as_ref().map(Body::as_slice),
            Some(self.tail()),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(IoSlice::new)
    }

    /// The frame as one buffer (tests of this crate and of its binary, the fuzz targets).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.slices() {
            v.extend_from_slice(&s);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_body_is_counted_once_until_its_last_copy_goes() {
        let m = Metrics::new();
        let body = Body::new(vec![7; 1000]);
        let copies: Vec<Frame> = (0..5)
            .map(|i| Frame::from_parts(vec![b'h'; 10 + i], Some(body.clone()), b"-end\r\n"))
            .collect();
        drop(body);
        assert!(!copies[0].body().unwrap().is_charged());
        for f in &copies {
            f.body().unwrap().charge(&m);
        }
        assert_eq!(m.queued(), 1000);
        assert_eq!(copies[2].len(), 12 + 1000 + 6);
        assert_eq!(copies[2].own_len(), 18);
        let mut copies = copies;
        copies.truncate(1);
        assert_eq!(m.queued(), 1000, "one copy still holds it");
        let bytes = copies[0].to_vec();
        assert_eq!(bytes.len(), 10 + 1000 + 6);
        assert!(bytes.starts_with(b"hhhhhhhhhh\x07") && bytes.ends_with(b"\x07-end\r\n"));
        drop(copies);
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn an_uncharged_body_is_never_taken_off() {
        let m = Metrics::new();
        m.queued_bytes.fetch_add(5, Ordering::Relaxed);
        drop(Body::new(vec![0; 100]));
        assert_eq!(m.queued(), 5);
        let f = Frame::whole(b"MSRP x 200 OK\r\n".to_vec());
        assert_eq!(f.slices().count(), 1);
        assert_eq!(f.len(), f.own_len());
    }
}
