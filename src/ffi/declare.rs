//! How the module is declared to Kamailio: statics Kamailio reads or writes ([`KCell`], [`KPtr`]).
use std::cell::UnsafeCell;
use std::ffi::c_char;

/// A static Kamailio may read or write (modparams, export tables).
#[repr(transparent)]
pub struct KCell<T>(pub UnsafeCell<T>);
// SAFETY: written by Kamailio only during start-up (single process, single thread), read after.
unsafe impl<T> Sync for KCell<T> {}

/// A pointer to an immutable static C string.
#[repr(transparent)]
pub struct KPtr(pub *const c_char);
// SAFETY: points to immutable static strings.
unsafe impl Sync for KPtr {}
