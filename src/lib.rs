//! berth: a declarative container engine for one Linux host.
//!
//! Layers, lowest first (a module never imports one above it):
//! `capabilities` (a kernel fact), `cidr` (IPv4 subnets) · `manifest`, `plan` (pure), `wire` (API bodies) · `store`, `runtime`,
//! `image`, `network`, `source_files`, `settings` · `reconcile` · `commands` · the front ends `api`,
//! `client`, `daemon`, `cli`, which never import each other's internals.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod build;
pub mod capabilities;
pub mod cidr;
pub mod cli;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod dnsname;
pub mod docker;
pub mod image;
pub mod manifest;
pub mod network;
pub mod plan;
pub mod reconcile;
pub mod runtime;
pub mod settings;
pub mod source;
pub mod source_files;
pub mod store;
pub mod wire;
