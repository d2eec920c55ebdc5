//! Images built from Dockerfiles (issue 21).
//!
//! The pure front half lives here: [`dockerfile`] parses the file into stages
//! and instructions with positions, [`subst`] expands variables with Docker's
//! shell-word rules, [`ignore`] reads `.dockerignore` patterns, and
//! [`context`] resolves, hashes and walks the files of one build's context.
//! None of them runs anything or knows about manifests or HTTP.

pub mod context;
pub mod dockerfile;
pub mod ignore;
pub mod subst;
