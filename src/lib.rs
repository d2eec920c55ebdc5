//! berth: a declarative container engine for one Linux host.

pub mod manifest;
pub mod plan;
