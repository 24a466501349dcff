//! message/cpim (RFC 3862), as used over MSRP (RFC 4975 §13) and in the Chat Alias 200 OK.
//!
//! The switch must forward the CPIM header block byte-for-byte (RFC 3862 §2.2, RFC 7701 §6.1), so
//! [`parse_headers`] only *reads* it: it borrows every header, reports `header_len` (where the
//! encapsulated MIME part starts) and is streaming at its envelope — until the blank line has
//! arrived it returns [`CpimError::Incomplete`], while a complete line that is already malformed
//! fails at once (the relay can refuse early). The encapsulated part is parsed separately by
//! [`parse_encapsulated`].
//!
//! Line ends: CRLF as RFC 3862 requires. [`parse_headers`], [`parse_encapsulated`] and
//! [`parse_message`] tolerate a bare LF, for readers that only display a message. A reader that
//! decides on behalf of others — the relay checks the CPIM From and To before it forwards the
//! bytes unchanged — uses [`parse_headers_with`] and [`parse_encapsulated_with`] with
//! [`LineEnds::CrlfOnly`]: otherwise it and a recipient could disagree on where a header line,
//! or the header block, ends, and the recipient would read headers nobody checked. A CR that is
//! not part of a line end is a control character and refused. Composers always write CRLF.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod compose;
mod error;
mod parse;

pub use crate::mime::LineEnds;
pub use compose::{compose, format_address, try_compose};
pub use error::CpimError;
pub use parse::{
    parse_address, parse_encapsulated, parse_encapsulated_with, parse_headers, parse_headers_with,
    parse_message, MAX_HEADER_BLOCK,
};

/// A CPIM From or To value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimAddress {
    /// Unescaped (`\"`, `\\`, `\uXXXX`, … decoded), or token words joined by single spaces.
    /// `None` for a bare `<uri>`.
    pub display_name: Option<String>,
    /// The URI between `<` and `>`, as written.
    pub uri: String,
}

/// The CPIM header block of a message/cpim body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimHeaders<'a> {
    /// The `From` header, parsed. At most one is allowed.
    pub from: Option<CpimAddress>,
    /// Every `To` header, parsed, in order.
    pub to: Vec<CpimAddress>,
    /// All headers in order, raw (value trimmed of surrounding SP/HTAB), From and To included.
    pub headers: Vec<(&'a str, &'a str)>,
    /// Bytes of the header block including the blank line: the encapsulated MIME part starts here.
    pub header_len: usize,
}

/// A whole message/cpim body: the CPIM headers and the encapsulated part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimMessage<'a> {
    pub headers: CpimHeaders<'a>,
    /// The encapsulated part's Content-Type value (trimmed, not parsed).
    pub content_type: &'a str,
    pub body: &'a [u8],
}
