//! Sans-IO protocol code shared by the Kamailio module, the MSRP relay and the client.
//! Parses and composes bytes; no IO, no sockets, no panics on input.
#![forbid(unsafe_code)]
pub mod control;
pub mod cpim;
pub mod focus_rpc;
mod mime;
pub mod msrp;
pub mod multipart;
pub mod nickname;
pub mod sdp;
pub mod sip;
