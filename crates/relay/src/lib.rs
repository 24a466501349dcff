//! The sans-IO core of the MSRP switch, as a library: the room logic ([`switch`]), the participant
//! registry it routes by ([`registry`]), the shared chunk bodies it queues ([`frame`]), the
//! per-thread generator of its ids ([`ids`]), the liveness bookkeeping of bound sessions ([`liveness`]) and the counters it updates ([`metrics`]).
//! The binary (`main.rs`) adds the tokio drivers; the fuzz targets in `fuzz/` drive
//! [`switch::Switch`] directly with an in-memory outlet.
#![forbid(unsafe_code)]

pub mod frame;
pub mod ids;
pub mod liveness;
pub mod metrics;
pub mod registry;
pub mod switch;
