//! SDP (RFC 8866, formerly RFC 4566) as far as MSRP chat needs it: reading an offer's
//! `m=message … TCP/MSRP *` line and its attributes (RFC 4975 §8, RFC 6135, RFC 7701 §5.2), and
//! composing the focus's answer (RFC 3264).
//!
//! The parser is tolerant where it costs nothing (LF-only line ends, blank lines, runs of spaces
//! in `m=`) and strict where a mistake would matter (first line `v=`, every line `x=…`, a
//! well-formed `m=` line, no control characters).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod answer;
mod parse;

pub use answer::{compose_answer, find_chat_media, AnswerParams, OfferError};
pub use parse::{parse, SdpError};

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// Session-level lines (before the first `m=`) in order, as (type letter, value).
    pub lines: Vec<(char, String)>,
    /// The `o=` value.
    pub origin: Option<String>,
    /// The session-level `c=` value.
    pub connection: Option<String>,
    /// Session-level `a=` lines as (name, value after the first `:`).
    pub attributes: Vec<(String, Option<String>)>,
    pub media: Vec<Media>,
}

/// One media description (`m=` line and the lines after it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    /// The `/<number of ports>` suffix, if any.
    pub port_count: Option<u16>,
    pub proto: String,
    pub fmts: Vec<String>,
    /// The media-level `c=` value.
    pub connection: Option<String>,
    /// `a=` lines as (name, value after the first `:`).
    pub attributes: Vec<(String, Option<String>)>,
    /// Every line after `m=` in this section, in order, as (type letter, value).
    pub lines: Vec<(char, String)>,
}

impl Media {
    /// Whether the transport is MSRP: `TCP/MSRP` or `TCP/TLS/MSRP` (RFC 4975 §8.1), any case.
    pub fn is_msrp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("TCP/MSRP")
            || self.proto.eq_ignore_ascii_case("TCP/TLS/MSRP")
    }

    /// Values of every `a=<name>` line (ASCII case-insensitive name); a flag attribute gives `""`.
    pub fn attribute_values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.attributes
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The value of the first `a=<name>` line, trimmed.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attribute_values(name).next().map(str::trim)
    }

    fn words(&self, name: &str) -> Vec<&str> {
        self.attribute_values(name)
            .flat_map(str::split_whitespace)
            .collect()
    }

    /// `a=accept-types` entries (all such lines, split on whitespace).
    pub fn accept_types(&self) -> Vec<&str> {
        self.words("accept-types")
    }

    /// `a=accept-wrapped-types` entries.
    pub fn accept_wrapped_types(&self) -> Vec<&str> {
        self.words("accept-wrapped-types")
    }

    /// The URIs of the first `a=path` line, in order (the first is the one to connect to).
    pub fn path(&self) -> Vec<&str> {
        self.attribute("path")
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default()
    }

    /// The `a=setup` role (`active`, `passive`, `actpass`, `holdconn`).
    pub fn setup(&self) -> Option<&str> {
        self.attribute("setup")
    }

    /// `a=chatroom` tokens (RFC 7701 §8: `nickname`, `private-messages`, …).
    pub fn chatroom_tokens(&self) -> Vec<&str> {
        self.words("chatroom")
    }

    /// `a=max-size` in octets, if present and numeric.
    pub fn max_size(&self) -> Option<u64> {
        self.attribute("max-size").and_then(|v| v.parse().ok())
    }
}
