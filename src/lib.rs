//! chat_alias — a Kamailio 5.6 module answering OMA SIMPLE IM "Chat Alias" joins as the conference
//! focus of pre-defined chat groups.
//!
//! Layers: [`ffi`] is the only place with `unsafe`, raw pointers and Kamailio types (exports table,
//! trampolines that catch panics, shared memory, RPC, KEMI). Everything else is safe Rust:
//! [`service`] runs the join/leave procedures over `chat_alias_focus` (groups, policy, alias table,
//! admission and answer) and `chat_alias_proto` (the wire formats), [`relay_link`] talks to the relay.
#![deny(unsafe_code)]

mod config;
#[allow(unsafe_code)]
mod ffi;
mod focus_socket;
mod relay_link;
mod service;
mod stats;
