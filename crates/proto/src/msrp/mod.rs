//! MSRP framing (RFC 4975 §7–§9, RFC 7701 NICKNAME), sans-IO.
//!
//! - [`Decoder`]: feed received bytes, [`Decoder::poll`] events out. Streaming at the envelope
//!   (the start line, the header block, the end-line may arrive in any number of pieces: until
//!   they are complete `poll` returns `Ok(None)`), complete inside (a header block whose
//!   terminating line has arrived is parsed as a whole, and an error in it is final). Bodies are
//!   streamed: only the few trailing bytes that could be the start of this transaction's
//!   end-line are held back, so memory stays bounded whatever the peer sends
//!   (see [`Decoder::buffered`]).
//! - [`encode`]: writes heads, end-lines and responses into a caller's buffer; fresh transaction
//!   and message ids from caller-provided randomness (nothing here reads a clock or an RNG).
//! - [`uri`]: MSRP URIs and their §6.1 comparison.
//!
//! Grammar (RFC 4975 §9, abridged):
//! ```text
//! msrp-request  = req-start headers [content-stuff] end-line
//! msrp-response = resp-start headers end-line
//! req-start     = "MSRP" SP transact-id SP method CRLF
//! resp-start    = "MSRP" SP transact-id SP status-code [SP comment] CRLF
//! content-stuff = *(Other-Mime-header CRLF) Content-Type 2CRLF data CRLF
//! end-line      = "-------" transact-id continuation-flag CRLF
//! ident         = ALPHANUM 3*31ident-char
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fmt;

mod decoder;
pub mod encode;
mod head;
pub mod uri;

#[cfg(test)]
mod tests;

pub use decoder::Decoder;
pub use uri::{check_uri, parse_uri, MsrpUri};

/// Longest possible end-line with its preceding CRLF: `\r\n` + 7 hyphens + a 32-character
/// transaction id + flag + `\r\n`.
pub const MAX_END_LINE: usize = 2 + 7 + 32 + 1 + 2;

/// RFC 4975 §7.1: requests other than SEND carry at most this many body octets.
pub const MAX_NON_SEND_BODY: usize = 10240;

/// Default for [`Limits::max_head_bytes`].
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;

/// A request method. `Display` gives the wire token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Send,
    Report,
    /// RFC 7701 §7.
    Nickname,
    /// Any other `1*UPALPHA` token (answer 501).
    Other(String),
}

impl Method {
    /// The wire token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Send => "SEND",
            Method::Report => "REPORT",
            Method::Nickname => "NICKNAME",
            Method::Other(s) => s,
        }
    }

    /// From the wire token (case-sensitive, as RFC 4975 §9 writes methods in capitals).
    pub fn from_token(t: &str) -> Method {
        match t {
            "SEND" => Method::Send,
            "REPORT" => Method::Report,
            "NICKNAME" => Method::Nickname,
            other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end-line's continuation flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuation {
    /// `+`: more chunks of this message follow.
    More,
    /// `$`: the last chunk (and the flag of every response).
    End,
    /// `#`: the sender aborted the message.
    Abort,
}

impl Continuation {
    /// The flag byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Continuation::More => b'+',
            Continuation::End => b'$',
            Continuation::Abort => b'#',
        }
    }

    /// From the flag byte.
    pub fn from_byte(b: u8) -> Option<Continuation> {
        match b {
            b'+' => Some(Continuation::More),
            b'$' => Some(Continuation::End),
            b'#' => Some(Continuation::Abort),
            _ => None,
        }
    }
}

impl fmt::Display for Continuation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Continuation::More => "+",
            Continuation::End => "$",
            Continuation::Abort => "#",
        })
    }
}

/// `Byte-Range: start-end/total` (RFC 4975 §7.1.1); 1-based, inclusive. A bodiless SEND is `1-0/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    pub start: u64,
    /// `None` = `*`.
    pub end: Option<u64>,
    /// `None` = `*`.
    pub total: Option<u64>,
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("*")?,
        }
        match self.total {
            Some(t) => write!(f, "/{t}"),
            None => f.write_str("/*"),
        }
    }
}

/// `Failure-Report` value (`Success-Report` only uses yes/no: see `RequestHead::success_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportMode {
    Yes,
    No,
    Partial,
}

impl ReportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportMode::Yes => "yes",
            ReportMode::No => "no",
            ReportMode::Partial => "partial",
        }
    }
}

/// Which responses a request may get: the one Failure-Report rule of the decoder (may a 400
/// go back?), the relay and the client.
///
/// - a REPORT is never answered (RFC 4975 §7.1.2);
/// - a NICKNAME is always answered: RFC 7701 §7 gives it no Failure-Report semantics, and the
///   requester waits for the focus's decision;
/// - any other request follows its `Failure-Report` (RFC 4975 §7.1.2): absent or `yes` → 200
///   and errors, `partial` → errors only, `no` → nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responses {
    /// 200 and errors.
    All,
    /// Errors only (`Failure-Report: partial`).
    ErrorsOnly,
    /// Nothing at all (`Failure-Report: no`, every REPORT).
    Never,
}

impl Responses {
    /// The rule for a request of `method` with this `Failure-Report` (None: header absent).
    pub fn for_request(method: &Method, failure_report: Option<ReportMode>) -> Responses {
        match method {
            Method::Report => Responses::Never,
            Method::Nickname => Responses::All,
            _ => match failure_report {
                None | Some(ReportMode::Yes) => Responses::All,
                Some(ReportMode::Partial) => Responses::ErrorsOnly,
                Some(ReportMode::No) => Responses::Never,
            },
        }
    }

    /// Whether a response with `code` may be sent.
    pub fn allows(self, code: u16) -> bool {
        match self {
            Responses::All => true,
            Responses::ErrorsOnly => code != 200,
            Responses::Never => false,
        }
    }
}

/// `Status: namespace code [comment]` of a REPORT (RFC 4975 §7.1.2); namespace is `000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Status {
    pub namespace: u16,
    pub code: u16,
    pub comment: Option<String>,
}

/// A request's start line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub transaction_id: String,
    pub method: Method,
    /// Raw URIs in order (each validated by the decoder with [`parse_uri`]).
    pub to_path: Vec<String>,
    pub from_path: Vec<String>,
    pub message_id: Option<String>,
    pub byte_range: Option<ByteRange>,
    /// `None` = header absent (RFC 4975: means `no`).
    pub success_report: Option<bool>,
    /// `None` = header absent (RFC 4975: means `yes`).
    pub failure_report: Option<ReportMode>,
    pub status: Option<Status>,
    /// RFC 7701 `Use-Nickname`, unquoted (escapes removed; may be empty). A `Use-Nickname`
    /// header whose value is not a quoted-string is *not* refused by the decoder: it is left in
    /// `other_headers` and this stays `None`, so the switch can answer 424.
    pub use_nickname: Option<String>,
    /// `Some` iff the request has a body.
    pub content_type: Option<String>,
    /// Every other header in order (other MIME headers included): name as written, value
    /// trimmed.
    pub other_headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Which responses this request may get ([`Responses::for_request`]).
    pub fn responses(&self) -> Responses {
        Responses::for_request(&self.method, self.failure_report)
    }

    /// A head with only the mandatory parts.
    pub fn new(
        transaction_id: impl Into<String>,
        method: Method,
        to_path: Vec<String>,
        from_path: Vec<String>,
    ) -> Self {
        RequestHead {
            transaction_id: transaction_id.into(),
            method,
            to_path,
            from_path,
            message_id: None,
            byte_range: None,
            success_report: None,
            failure_report: None,
            status: None,
            use_nickname: None,
            content_type: None,
            other_headers: Vec::new(),
        }
    }
}

/// A whole response (responses have no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub transaction_id: String,
    pub status: u16,
    pub comment: Option<String>,
    pub to_path: Vec<String>,
    pub from_path: Vec<String>,
    pub other_headers: Vec<(String, String)>,
}

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start line + headers + the line ending them (blank line or end-line). Default 16 KiB.
    pub max_head_bytes: usize,
    /// Largest body of a request other than SEND (RFC 4975 §7.1: 10240).
    pub max_non_send_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_non_send_body: MAX_NON_SEND_BODY,
        }
    }
}

/// What [`Decoder::poll`] yields, in wire order: for a request `Request`, zero or more `Body`,
/// then `End`; for a response a single `Response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request's head; body events follow.
    Request(RequestHead),
    /// A piece of the current request's body (never empty; content only: never the CRLF
    /// before the end-line).
    Body(Vec<u8>),
    /// The current request's end-line. `body_len` counts all its `Body` bytes.
    End {
        transaction_id: String,
        continuation: Continuation,
        body_len: u64,
    },
    /// A whole response.
    Response(ResponseHead),
}

/// Decoding and URI errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsrpError {
    /// The message is malformed but framing is intact; the decoder has skipped to its end-line
    /// and continues with the next message. `transaction_id` is `Some` exactly when a 400 may
    /// be sent back: it is `None` when the broken message was a response, a REPORT or a request
    /// with `Failure-Report: no` (none of which may be answered, RFC 4975 §7.1.2, §7.2). The
    /// `reason` names the transaction id in every case.
    Malformed {
        transaction_id: Option<String>,
        reason: String,
    },
    /// Framing is lost (a start line that is not one, a head over the limit): close the
    /// connection. The decoder keeps returning this error.
    Framing(String),
    /// A malformed MSRP URI ([`parse_uri`]).
    BadUri(String),
}

impl fmt::Display for MsrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsrpError::Malformed {
                transaction_id: Some(t),
                reason,
            } => write!(f, "malformed MSRP message (transaction {t}): {reason}"),
            MsrpError::Malformed {
                transaction_id: None,
                reason,
            } => write!(f, "malformed MSRP message: {reason}"),
            MsrpError::Framing(r) => write!(f, "MSRP framing lost: {r}"),
            MsrpError::BadUri(r) => write!(f, "bad MSRP URI: {r}"),
        }
    }
}

impl std::error::Error for MsrpError {}

/// The usual reason phrase of an MSRP status code (RFC 4975 §10, RFC 7701 §12, in the style
/// of the RFC examples: "200 OK"); `""` for codes we do not know.
pub fn status_comment(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Parameter Out Of Bounds",
        424 => "Bad Nickname",
        425 => "Nickname Reserved Or Already In Use",
        428 => "Private Messages Not Supported",
        481 => "No Such Session",
        501 => "Not Implemented",
        506 => "Session Already Bound",
        _ => "",
    }
}

/// `ident = ALPHANUM 3*31ident-char` (RFC 4975 §9): transaction ids and Message-IDs.
pub fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=32).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|&c| is_ident_char(c))
}

pub(crate) fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=')
}
