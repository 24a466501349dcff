//! The FFI room: every `unsafe` block, raw pointer and bindgen type of the module lives below here,
//! and nothing outside it is imported by the safe code (it reaches Kamailio through the traits of
//! `crate::service`). Entry points from Kamailio are `extern "C"` trampolines that check their
//! pointers, run the safe code under `catch_unwind`, and map the result to Kamailio's conventions
//! (script functions: >0 true, <0 false, 0 stop the script; init functions: 0 ok, <0 fail).
//!
//! Files, each depending only on those listed after it:
//! - `exports.rs`: the module's declaration (script functions, KEMI, modparams, RPCs) and its
//!   init, child init and script handlers;
//! - `rpc.rs`: the RPC commands and the reply builder;
//! - `focus.rs`: the focus socket's process and the socket's system side;
//! - `declare.rs`: the `kamailio_module!` macro that turns one declaration into Kamailio's tables;
//! - `msg.rs`: a SIP request and its tm transaction ([`crate::service::Transaction`]);
//! - `host.rs`: the process-wide module state and the [`crate::service::Host`] over Kamailio
//!   (logger, counters, shared memory, randomness, relay), the panic guard;
//! - `shm.rs`: shared memory: alias table stripes, locks, documents, dialog references;
//! - `bindings.rs`: bindgen's output.
pub(crate) mod bindings;
mod declare;
mod exports;
mod focus;
mod host;
mod msg;
mod rpc;
mod shm;
