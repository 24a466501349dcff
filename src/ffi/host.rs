//! The module's state in this process ([`MODULE`], set once in mod_init before the fork) and the
//! [`Host`] the safe procedures run on inside Kamailio: its logger and counters, the shared memory
//! of [`ShmTable`], the kernel's CSPRNG and the relay link. Also the panic guard every entry point
//! runs under.
use super::bindings as b;
use super::shm::{ShmTable, TmDialog};
use crate::relay_link::RelayLink;
use crate::service::{DialogSlots, Host, Level, Module};
use crate::stats::Counter;
use once_cell::sync::OnceCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// Kamailio as the procedures see it.
pub struct Kamailio {
    pub shm: ShmTable,
    relay_socket: String,
    relay_timeout_ms: u32,
    /// Taken in mod_init, before the fork: every process measures from the same instant of the
    /// system-wide monotonic clock, so a second counted in one process means the same in another.
    epoch: Instant,
}

impl Kamailio {
    pub fn new(shm: ShmTable, relay_socket: &str, relay_timeout_ms: u32) -> Self {
        Kamailio {
            shm,
            relay_socket: relay_socket.to_string(),
            relay_timeout_ms,
            epoch: Instant::now(),
        }
    }
}

/// The module in this process: None before mod_init succeeded.
static MODULE: OnceCell<Module<Kamailio>> = OnceCell::new();

pub fn module() -> Option<&'static Module<Kamailio>> {
    MODULE.get()
}

pub fn set_module(m: Module<Kamailio>) -> Result<(), String> {
    MODULE.set(m).map_err(|_| "mod_init ran twice".to_string())
}

/// Logs through Kamailio's logger (module prefix, configured level and destination).
pub fn log(level: Level, msg: &str) {
    let len = msg.len().min(i32::MAX as usize) as i32;
    // SAFETY: ca_log reads exactly `len` bytes from `msg` and keeps no reference.
    unsafe { b::ca_log(level as i32, msg.as_ptr().cast(), len) }
}

impl Host for Kamailio {
    type Dialog = TmDialog;
    type Relay = RelayLink;

    fn log(&self, level: Level, msg: &str) {
        log(level, msg)
    }

    fn count(&self, c: Counter, delta: i32) {
        // SAFETY: ca_counter_add bounds-checks the index against the registered counters.
        unsafe { b::ca_counter_add(c as i32, delta) }
    }

    fn random16(&self) -> Option<[u8; 16]> {
        let mut bytes = [0u8; 16];
        match getrandom::fill(&mut bytes) {
            Ok(()) => Some(bytes),
            Err(e) => {
                log(Level::Error, &format!("getrandom failed: {e}"));
                None
            }
        }
    }

    fn now_s(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    fn relay(&self) -> RelayLink {
        RelayLink::new(&self.relay_socket, self.relay_timeout_ms)
    }

    fn stripes(&self) -> usize {
        self.shm.stripes()
    }

    fn with_stripe<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut [u8], &mut dyn DialogSlots<TmDialog>) -> R,
    ) -> R {
        self.shm
            .with_stripe_dialogs(i, |mem, mut refs| f(mem, &mut refs))
    }

    fn docs_generation(&self) -> u64 {
        self.shm.docs_generation()
    }

    fn read_docs(&self) -> Option<(u64, Vec<u8>)> {
        self.shm.read_docs()
    }

    fn publish_docs(&self, blob: &[u8]) -> Result<u64, String> {
        self.shm.publish_docs(blob)
    }

    fn bury(&self, dialog_key: u128) {
        self.shm.bury(dialog_key)
    }

    fn is_buried(&self, dialog_key: u128) -> bool {
        self.shm.is_buried(dialog_key)
    }
}

/// Runs `f`, turning a panic into `on_panic` after logging it: no panic crosses into C.
pub fn guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
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
pub fn install_panic_hook() {
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
