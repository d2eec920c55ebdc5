//! berth: a declarative container engine for one Linux host.
//!
//! Layers, lowest first (a module never imports one above it):
//! `manifest`, `plan` (pure) · `store`, `runtime`, `image` · `reconcile` ·
//! `api`, `client`, `daemon`, `cli`.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod image;
pub mod manifest;
pub mod plan;
pub mod reconcile;
pub mod runtime;
pub mod store;
