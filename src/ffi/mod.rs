//! The FFI room: every `unsafe` block, raw pointer and bindgen type of the module lives below here.
//! Entry points from Kamailio are `extern "C"` trampolines that check their pointers, run the safe
//! code under `catch_unwind`, and map the result to Kamailio's conventions (script functions: >0
//! true, <0 false, 0 stop the script; init functions: 0 ok, <0 fail).
mod exports;
pub(crate) mod focus;
mod kemi;
mod msg;
mod rpc;
mod shared;

pub use shared::{DialogRef, Shared};

/// Kamailio's API as bindgen sees it through `include/wrapper.h` (allowlisted).
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use crate::stats::Counter;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// Logs through Kamailio's logger (module prefix, configured level and destination).
pub fn log(level: Level, msg: &str) {
    let len = msg.len().min(i32::MAX as usize) as i32;
    // SAFETY: ca_log reads exactly `len` bytes from `msg` and keeps no reference.
    unsafe { bindings::ca_log(level as i32, msg.as_ptr().cast(), len) }
}

/// Adds `delta` to one of the module's statistics counters.
pub fn count(c: Counter, delta: i32) {
    // SAFETY: ca_counter_add bounds-checks the index against the registered counters.
    unsafe { bindings::ca_counter_add(c as i32, delta) }
}

/// Runs `f`, turning a panic into `on_panic` after logging it: no panic crosses into C.
pub(crate) fn guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            log(
                Level::Error,
                &format!("internal error (panic) in {what}; request answered with an error"),
            );
            on_panic
        }
    }
}

/// Routes panic messages to Kamailio's log instead of a stderr nobody reads.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log(Level::Error, &format!("panic{loc}: {msg}"));
    }));
}
