//! Kamailio's API as bindgen sees it through `include/wrapper.h` (allowlisted in build.rs): the
//! export table types, route and parameter constants, KEMI and RPC types, and the shim's
//! functions (`src/ffi/shim.c`) for what is a macro or a static inline in Kamailio's headers.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
