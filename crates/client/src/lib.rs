//! The IM Client of Chat Alias (OMA SIMPLE IM "Chat Alias" change request, 7.1.3.2.1).
//!
//! Joins a pre-defined chat group over SIP — anonymously under an alias (`Privacy: id`,
//! `From: "alias" <sip:anonymous@anonymous.invalid>`) or with the user's own address — takes its
//! sending identity from the 200 OK (the CPIM `To` of a `multipart/mixed` answer, else what it
//! sent), then chats over MSRP with message/cpim through the conference's switch.
//!
//! Layers, in the style of quinn-proto (sans-IO state machines driven by a thin IO layer):
//! - sans-IO cores that take bytes and `now` and hand back bytes, timeouts and events:
//!   [`sip::Uac`] (the INVITE/ACK/BYE transactions and the dialog, RFC 3261 timers) and
//!   [`msrp::Session`] (bind, chunking, transaction responses, reassembly, RFC 4975);
//!   pure helpers: [`sip::answer::parse_join_answer`], [`command::parse`], [`identity`];
//! - [`chat`]: the thin tokio driver that moves bytes and time between sockets and the cores,
//!   and [`Chat`], its blocking handle (what the CLI and the end-to-end tests use).
#![forbid(unsafe_code)]

pub mod chat;
pub mod command;
pub mod event;
pub mod identity;
pub mod msrp;
mod ping;
mod random;
pub mod sip;
mod time;

pub use chat::{Chat, ChatSender, Config, JoinError, Joining, Transport};
pub use event::{Event, Failure, FailureKind, Joined, LeftBy, Message, Sent};
pub use identity::{Identity, Recipient};
pub use ping::ping;
