//! A parsed SIP request as the safe code sees it, and the tm transaction it is answered through.
use super::bindings as b;
use super::shm::TmDialog;
use crate::service::{Begin, Transaction};
use std::borrow::Cow;
use std::ffi::CString;

pub struct SipMsg {
    raw: *mut b::sip_msg,
}

/// The bytes a `ca_str` from Kamailio points at (empty when NULL or non-positive length).
///
/// # Safety
/// `s.s` must point to `s.len` readable bytes that stay valid for the returned lifetime (Kamailio
/// message memory while the message is being handled, or a static buffer).
unsafe fn view(s: &b::ca_str) -> &[u8] {
    if s.s.is_null() || s.len <= 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `len` readable bytes at `s`.
    unsafe { std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize) }
}

/// An owned, lossily decoded copy of a `ca_str`.
///
/// # Safety
/// As for [`view`].
unsafe fn text(s: &b::ca_str) -> String {
    // SAFETY: forwarded contract.
    String::from_utf8_lossy(unsafe { view(s) }).into_owned()
}

/// Like [`view`], for a lifetime the caller chooses.
///
/// # Safety
/// `s.s` must point to `s.len` readable bytes that stay valid and unchanged for `'a`.
unsafe fn view_for<'a>(s: &b::ca_str) -> &'a [u8] {
    if s.s.is_null() || s.len <= 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `len` readable bytes at `s` for `'a`.
    unsafe { std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize) }
}

/// A `ca_str` as text borrowed from the message (copied only when it is not valid UTF-8, lossily),
/// without surrounding whitespace.
///
/// # Safety
/// As for [`view_for`].
unsafe fn text_view<'a>(s: &b::ca_str) -> Cow<'a, str> {
    // SAFETY: forwarded contract.
    let bytes: &'a [u8] = unsafe { view_for(s) };
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(t) => Cow::Borrowed(t.trim()),
        Cow::Owned(t) => Cow::Owned(t.trim().to_string()),
    }
}

/// The parts of a request the procedures look at, borrowed from Kamailio's message memory (valid
/// while the script function runs): no copy of headers or body per call.
pub struct RequestParts<'a> {
    pub method: Cow<'a, str>,
    pub ruri: Cow<'a, str>,
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// All values of a header (compact forms included), names compared case-insensitively.
    pub fn values<'a>(&'a self, name: &str, compact: Option<&str>) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(n, _)| {
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
            })
            .map(|(_, v)| v.as_ref())
            .collect()
    }
    pub fn first(&self, name: &str, compact: Option<&str>) -> Option<&str> {
        self.values(name, compact).into_iter().next()
    }
}

impl SipMsg {
    /// # Safety
    /// `raw` must be the message Kamailio passed to the current script function, valid for the call.
    pub unsafe fn from_raw(raw: *mut b::sip_msg) -> Option<SipMsg> {
        if raw.is_null() {
            None
        } else {
            Some(SipMsg { raw })
        }
    }

    /// Parses every header and gives views of what the procedures need. None: not a parsable
    /// request.
    ///
    /// # Safety
    /// `'a` must end before the current script call returns: the views point into the message's
    /// buffer (and a rewritten R-URI), which Kamailio keeps unchanged until then (the procedures
    /// only add reply lumps and create the transaction, which copies the message).
    pub unsafe fn parts<'a>(&self) -> Option<RequestParts<'a>> {
        // SAFETY: `raw` is a valid message (constructor contract); the shim only reads it; the
        // views live for `'a` per this function's contract.
        unsafe {
            if b::ca_msg_parse_all(self.raw) != 0 || b::ca_msg_is_request(self.raw) != 1 {
                return None;
            }
            let mut s = b::ca_str {
                s: std::ptr::null(),
                len: 0,
            };
            b::ca_msg_method(self.raw, &mut s);
            let method = text_view(&s);
            b::ca_msg_ruri(self.raw, &mut s);
            let ruri = text_view(&s);
            b::ca_msg_body(self.raw, &mut s);
            let body = view_for(&s);
            let mut headers = Vec::with_capacity(16);
            let mut cursor: *mut std::ffi::c_void = std::ptr::null_mut();
            let mut name = b::ca_str {
                s: std::ptr::null(),
                len: 0,
            };
            let mut value = b::ca_str {
                s: std::ptr::null(),
                len: 0,
            };
            while b::ca_msg_next_header(self.raw, &mut cursor, &mut name, &mut value) == 0 {
                headers.push((text_view(&name), text_view(&value)));
            }
            Some(RequestParts {
                method,
                ruri,
                headers,
                body,
            })
        }
    }

    /// The Request-URI alone (no header parsing, nothing else copied): what group lookups need.
    pub fn request_uri(&self) -> Option<String> {
        let mut s = b::ca_str {
            s: std::ptr::null(),
            len: 0,
        };
        // SAFETY: `raw` is a valid message; the first line is parsed on receipt; the view is
        // copied before this call returns.
        unsafe {
            if b::ca_msg_ruri(self.raw, &mut s) != 0 {
                return None;
            }
            Some(text(&s))
        }
    }

    /// A string parameter fixed up with fixup_spve_null, evaluated for this message.
    ///
    /// # Safety
    /// `param` must be the fixed-up parameter Kamailio passed with this message.
    pub unsafe fn str_param(&self, param: *mut std::ffi::c_char) -> Option<String> {
        if param.is_null() {
            return None;
        }
        let mut out = b::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        };
        if b::get_str_fparam(&mut out, self.raw, param.cast()) != 0 {
            return None;
        }
        Some(text(&b::ca_str {
            s: out.s,
            len: out.len,
        }))
    }
}

/// Replaces what cannot appear in a SIP reason phrase or header (CR, LF, NUL).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\r' || c == '\n' || c == '\0' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

impl Transaction for SipMsg {
    type Dialog = TmDialog;

    fn begin(&mut self) -> Begin {
        // SAFETY: valid message; tm API loaded in mod_init.
        let rc = unsafe { b::ca_t_newtran(self.raw) };
        match rc {
            r if r > 0 => Begin::New,
            0 => Begin::Retransmission,
            _ => Begin::Failed,
        }
    }

    fn local_tag(&mut self) -> Option<String> {
        let mut s = b::ca_str {
            s: std::ptr::null(),
            len: 0,
        };
        // SAFETY: valid message; the shim returns a view of tm's static tag buffer, copied at once.
        if unsafe { b::ca_t_reply_totag(self.raw, &mut s) } != 0 {
            return None;
        }
        // SAFETY: the shim pointed `s` at tm's tag buffer, valid until the next tm call.
        Some(unsafe { text(&s) })
    }

    fn dialog(&mut self) -> Option<TmDialog> {
        // SAFETY: valid message of the current call; begin() created its transaction.
        unsafe { TmDialog::from_invite(self.raw) }
    }

    fn reply(&mut self, code: u16, reason: &str, headers: &[String], body: &[u8]) -> bool {
        // One reply lump for all headers: each lump is an allocation in Kamailio's process memory.
        if !headers.is_empty() {
            let mut lines = String::with_capacity(headers.iter().map(|h| h.len() + 2).sum());
            for h in headers {
                lines.push_str(&sanitize(h));
                lines.push_str("\r\n");
            }
            // SAFETY: add_lump_rpl copies the bytes (no LUMP_RPL_NODUP).
            if unsafe {
                b::ca_add_reply_header(self.raw, lines.as_ptr().cast(), lines.len() as i32)
            } != 0
            {
                return false;
            }
        }
        if !body.is_empty() {
            // SAFETY: as above, copied.
            if unsafe { b::ca_add_reply_body(self.raw, body.as_ptr().cast(), body.len() as i32) }
                != 0
            {
                return false;
            }
        }
        let Ok(reason) = CString::new(sanitize(reason)) else {
            return false;
        };
        // SAFETY: tm builds the reply immediately; the reason is only read during the call.
        unsafe { b::ca_t_reply(self.raw, i32::from(code), reason.as_ptr()) >= 0 }
    }
}
