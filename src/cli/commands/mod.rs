//! One file per command or family of commands, as kubectl and youki lay
//! them out. A command takes the global flags and its clap args, talks to the
//! daemon through `cli::client`, and returns its exit code; what it prints as
//! a table, JSON or YAML goes through `cli::output`.

pub mod apply;
pub mod build;
pub mod container;
pub mod delete;
pub mod events;
pub mod exec;
pub mod get;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod listing;
pub mod logs;
pub mod network;
pub mod ps;
pub mod run;
pub mod schema;
pub mod sigproxy;
pub mod sources;
pub mod stop;
pub mod validate;
pub mod version;
pub mod volumes;
