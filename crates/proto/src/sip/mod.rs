//! Whole SIP messages and their framing on streams ([`message`]), and pieces of SIP header values: name-addr / addr-spec (RFC 3261 §20.10, §25.1), URIs and their
//! equivalence (§19.1), Privacy (RFC 3323 §4.2, RFC 3325 §9.3), media types and Accept (§20.1),
//! and quoting of display names for composing.
//!
//! Parsers take the header *value* (what follows `Name:`), never the whole line, and return a
//! typed [`SipError`]. Composers never emit CR, LF or other control characters: the `try_*`
//! variants refuse them, the total variants drop them, so a hostile display name cannot inject a
//! header.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod error;
mod lex;
mod media_type;
pub mod message;
mod name_addr;
mod privacy;
mod quote;
mod uri;

pub use error::SipError;
pub use media_type::{accept_allows, parse_media_type, MediaType};
pub use message::{MessageError, SipMessage, StartLine, StreamDecoder};
pub use name_addr::{format_name_addr, parse_name_addr, parse_name_addr_list, NameAddr};
pub use privacy::{privacy_requests_id, privacy_values};
pub use quote::{quote_display_name, try_quote_display_name};
pub use uri::{parse_uri, Scheme, Uri, MAX_URI_PARAMS};
