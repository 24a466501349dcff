//! MSRP frame boundaries and nothing more (RFC 4975 §7, §9): a frame starts with
//! `MSRP SP transact-id SP (method | status-code ...) CRLF` and ends with the end-line
//! `"-------" transact-id ("$" / "+" / "#") CRLF`, which always begins a line (it follows the last
//! header's CRLF, or the CRLF that closes the body). The raw forwarder and the load generator use
//! this; the headers and the body are never parsed.
use memchr::memmem;

/// The start line must end within this many bytes (the relay's own head limit).
pub const MAX_START_LINE: usize = 16 * 1024;

/// Longest transaction id (RFC 4975 §9: `ident = ALPHANUM 3*31ident-char`).
pub const MAX_TID: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

/// A whole frame at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Bytes from the start line to the end-line's CRLF included.
    pub len: usize,
    pub kind: Kind,
    /// Where the transaction id is in the frame.
    pub tid: std::ops::Range<usize>,
    /// The method, or the status code with its comment.
    pub what: std::ops::Range<usize>,
    /// The continuation flag of the end-line.
    pub flag: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not an MSRP start line: framing is lost.
    NotMsrp,
    /// The frame has grown past the scanner's limit without an end-line.
    TooLarge(usize),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotMsrp => write!(f, "not an MSRP start line"),
            Error::TooLarge(n) => write!(f, "no end-line within {n} bytes"),
        }
    }
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'%' | b'=')
}

/// Finds the frame at the front of `buf`. Resumable: `searched` is how far an earlier call got
/// looking for this frame's end-line (start with 0, keep it while `Ok(None)` is returned, reset it
/// to 0 after a frame), so a frame arriving in many reads is scanned about once.
pub fn scan(buf: &[u8], searched: &mut usize, max_frame: usize) -> Result<Option<Frame>, Error> {
    let Some(sl_end) = memchr::memchr(b'\n', &buf[..buf.len().min(MAX_START_LINE)]) else {
        if buf.len() >= MAX_START_LINE || (buf.len() >= 5 && !buf.starts_with(b"MSRP ")) {
            return Err(Error::NotMsrp);
        }
        if !b"MSRP ".starts_with(&buf[..buf.len().min(5)]) {
            return Err(Error::NotMsrp);
        }
        return Ok(None);
    };
    let line = &buf[..sl_end];
    if !line.starts_with(b"MSRP ") || !line.ends_with(b"\r") {
        return Err(Error::NotMsrp);
    }
    let tid_start = 5;
    let tid_len = line[tid_start..]
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Error::NotMsrp)?;
    let tid = tid_start..tid_start + tid_len;
    if !(4..=MAX_TID).contains(&tid_len) || !line[tid.clone()].iter().all(|&b| ident_char(b)) {
        return Err(Error::NotMsrp);
    }
    let what = tid.end + 1..sl_end - 1;
    let w = &line[what.clone()];
    if w.is_empty() {
        return Err(Error::NotMsrp);
    }
    let kind = if w.len() >= 3
        && w[..3].iter().all(u8::is_ascii_digit)
        && w.get(3).is_none_or(|&b| b == b' ')
    {
        Kind::Response
    } else {
        Kind::Request
    };
    // The end-line, preceded by the '\n' of the line before it: "\n-------" tid.
    let mut needle = Vec::with_capacity(8 + tid_len);
    needle.extend_from_slice(b"\n-------");
    needle.extend_from_slice(&buf[tid.clone()]);
    let mut from = (*searched).max(sl_end);
    loop {
        let Some(at) = memmem::find(&buf[from..], &needle).map(|i| from + i) else {
            // The needle may straddle the end of what has arrived: resume just before it.
            *searched = buf.len().saturating_sub(needle.len() - 1).max(sl_end);
            if buf.len() > max_frame {
                return Err(Error::TooLarge(max_frame));
            }
            return Ok(None);
        };
        let flag_at = at + needle.len();
        if buf.len() < flag_at + 3 {
            *searched = at;
            return Ok(None);
        }
        let flag = buf[flag_at];
        if matches!(flag, b'$' | b'+' | b'#') && &buf[flag_at + 1..flag_at + 3] == b"\r\n" {
            *searched = 0;
            return Ok(Some(Frame {
                len: flag_at + 3,
                kind,
                tid,
                what,
                flag,
            }));
        }
        // "-------tid" followed by something else is content (a longer transaction id).
        from = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://r:1/s;tcp\r\nFrom-Path: msrp://c:2/t;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob,\r\n-------a786hjs2X\r\n-------a786hjs2$\r\n";
    const OK: &[u8] = b"MSRP a786hjs2 200 OK\r\nTo-Path: msrp://c:2/t;tcp\r\nFrom-Path: msrp://r:1/s;tcp\r\n-------a786hjs2$\r\n";
    const BODILESS: &[u8] = b"MSRP dkei38sd SEND\r\nTo-Path: msrp://r:1/s;tcp\r\nFrom-Path: msrp://c:2/t;tcp\r\nMessage-ID: 4564dpWd\r\nByte-Range: 1-0/0\r\n-------dkei38sd+\r\n";

    #[test]
    fn whole_frames() {
        let mut s = 0;
        let f = scan(SEND, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!(f.len, SEND.len());
        assert_eq!(f.kind, Kind::Request);
        assert_eq!(&SEND[f.tid.clone()], b"a786hjs2");
        assert_eq!(&SEND[f.what.clone()], b"SEND");
        assert_eq!(f.flag, b'$');
        let f = scan(OK, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!((f.len, f.kind), (OK.len(), Kind::Response));
        assert_eq!(&OK[f.what.clone()], b"200 OK");
        let f = scan(BODILESS, &mut s, 1 << 20).unwrap().unwrap();
        assert_eq!((f.len, f.flag), (BODILESS.len(), b'+'));
    }

    #[test]
    fn every_split_point_and_frames_back_to_back() {
        let mut all = Vec::new();
        all.extend_from_slice(SEND);
        all.extend_from_slice(OK);
        all.extend_from_slice(BODILESS);
        let lens = [SEND.len(), OK.len(), BODILESS.len()];
        // Bytes arrive in pieces of every size from 1 to the whole; frames come out whole and
        // in order every time.
        for piece in 1..=all.len() {
            let mut buf = Vec::new();
            let mut s = 0;
            let mut got = Vec::new();
            for chunk in all.chunks(piece) {
                buf.extend_from_slice(chunk);
                while let Some(f) = scan(&buf, &mut s, 1 << 20).unwrap() {
                    got.push(buf.drain(..f.len).collect::<Vec<u8>>());
                }
            }
            assert!(buf.is_empty(), "piece {piece}");
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                lens,
                "piece {piece}"
            );
            assert_eq!(got.concat(), all);
        }
    }

    #[test]
    fn not_msrp_and_too_large() {
        let mut s = 0;
        assert_eq!(scan(b"GET / HTTP/1.1\r\n", &mut s, 99), Err(Error::NotMsrp));
        assert_eq!(scan(b"GET", &mut s, 99), Err(Error::NotMsrp));
        assert_eq!(scan(b"MSR", &mut s, 99), Ok(None));
        assert_eq!(scan(b"MSRP x SEND\r\n", &mut s, 99), Err(Error::NotMsrp));
        assert_eq!(scan(b"MSRP abcd\r\n", &mut s, 99), Err(Error::NotMsrp));
        let mut big = b"MSRP abcd SEND\r\nContent-Type: a/b\r\n\r\n".to_vec();
        big.resize(200, b'x');
        let mut s = 0;
        assert_eq!(scan(&big, &mut s, 99), Err(Error::TooLarge(99)));
        assert_eq!(
            scan(&vec![b'M'; MAX_START_LINE], &mut 0, 99),
            Err(Error::NotMsrp)
        );
    }
}
