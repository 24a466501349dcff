//! The sans-IO core of the MSRP switch, as a library: the room logic ([`switch`]), the participant
//! registry it routes by ([`registry`]), the shared chunk bodies it queues ([`frame`]), the
//! liveness bookkeeping of bound sessions ([`liveness`]), the counters it updates ([`metrics`])
//! and the reading of the focus's answers ([`focus_reply`]). The binary (`main.rs`) adds the
//! tokio drivers; the fuzz targets in `fuzz/` drive [`switch::Switch`] directly with an
//! in-memory outlet, and [`focus_reply`] with arbitrary datagrams.
#![forbid(unsafe_code)]

pub mod focus_reply;
pub mod frame;
pub mod liveness;
pub mod metrics;
pub mod registry;
pub mod switch;
