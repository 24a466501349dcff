//! The conference focus: group documents and policy, the alias table, join decisions.
#![forbid(unsafe_code)]
pub mod alias_table;
pub mod groups;
pub mod join;
