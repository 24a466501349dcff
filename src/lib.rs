//! chat_alias — a Kamailio 5.6 module answering OMA SIMPLE IM "Chat Alias" joins as the conference
//! focus of pre-defined chat groups.
//!
//! Layers, each depending only on those after it:
//! - [`ffi`], the FFI room: the only place with `unsafe`, raw pointers and Kamailio types. The
//!   module's declaration (`ffi/exports.rs`, expanded by `kamailio_module!` into Kamailio's tables
//!   and panic-guarded trampolines), shared memory, the SIP message and tm transaction, RPC replies,
//!   the focus socket's process, and the [`service::Host`] over Kamailio.
//! - [`service`]: the join and leave procedures, the focus's own removals, the answers to the
//!   relay and the operator, over `chat_alias_focus` (groups, policy, alias table, admission and
//!   answer) and `chat_alias_proto` (the wire formats). It reaches Kamailio only through the
//!   `Host`, `Transaction` and `Relay` traits, so it is unit-tested with fakes.
//! - [`focus_socket`] (the relay's questions, as JSON-RPC datagrams), [`relay_link`] (this
//!   process's connection to the relay), [`modparams`] (the settings), [`stats`] (the counters).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod ffi;
mod focus_socket;
mod modparams;
mod relay_link;
mod service;
mod stats;
