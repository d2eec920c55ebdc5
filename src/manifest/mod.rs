//! Manifests: the four kinds, parsing with positions, validation and the
//! JSON Schema. Pure: no file, kernel or store access; callers hand in text.
//!
//! - [`parse`] reads YAML within budgets (`read.rs`) into trees that keep
//!   every value's position (`node.rs`), fills the [`types`] from them with a
//!   serde deserializer (`de.rs`) and records where fields were written
//!   (`positions.rs`); `parse.rs` ties these together per document;
//! - [`validate`] checks a parsed set as a whole (`validate.rs`);
//! - both suggest the name that was meant for a typo (`suggest.rs`);
//! - [`parse_reference`] reads image references (`reference.rs`);
//! - [`schemas`] gives the JSON Schema of each kind (`schema.rs`).

mod de;
pub mod isolation;

mod node;
mod parse;
mod positions;
pub mod quantity;
mod read;
pub mod reference;
mod schema;
mod suggest;
#[cfg(test)]
mod testing;
pub mod types;
mod validate;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use parse::{parse_with_positions, API_VERSION};
pub use positions::Positions;
pub use quantity::{Cpus, Duration, Memory, MemorySwap};
pub use read::{source_from_bytes, MAX_ALIAS_EVENTS, MAX_DEPTH, MAX_SOURCE_BYTES};
pub use reference::{parse_reference, ImageReference, ReferenceError};
pub use schema::document_schema;
pub use types::*;
pub use validate::{
    dns_label_of, is_dns_label, is_docker_name, is_hostname, is_object_name, parse_mac, validate_with_positions,
    HOST_GATEWAY,
};

/// One manifest text and the name it is reported under (a path, or `<stdin>`).
///
/// Make one from a file's bytes with [`source_from_bytes`], which locates
/// input that is not UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Source {
    pub file: String,
    pub text: String,
}

/// One problem in a manifest, located precisely enough to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line.
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `spec.resources.memory`.
    pub field: String,
    pub message: String,
    /// The offending source line(s), may be empty.
    pub snippet: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        // YAML-level problems (syntax, refused input) have no field path.
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if !self.snippet.is_empty() {
            for l in self.snippet.lines() {
                write!(f, "\n    | {l}")?;
            }
        }
        Ok(())
    }
}

/// `text` with control characters other than tab escaped: diagnostics quote
/// the user's text and end up on terminals.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Parses every document of every source. Returns all problems at once.
///
/// Empty documents are skipped, but a source with no document at all (empty,
/// or only comments and `---`) is a problem. Each object's origin is the position of its
/// document's first key. Syntax errors, unknown fields (with "did you mean"),
/// wrong types, malformed quantities, a wrong `apiVersion` or `kind`, alias
/// bombs and too deep nesting are all reported with file, line, column, the
/// dotted field path and the source line.
pub fn parse(sources: &[Source]) -> Result<Vec<Object>, Vec<Diagnostic>> {
    parse_with_positions(sources).map(|(objects, _)| objects)
}

/// Checks a parsed set as a whole: names, duplicates, references, cycles,
/// ports, unsupported fields. `exists(kind, name)` answers for objects that are
/// not in the set but already known to the daemon (from other sources).
///
/// Without the source text, problems are located at the object's origin; use
/// [`validate_with_positions`] (as [`load`] does) to point at the field.
pub fn validate(objects: &[Object], exists: &dyn Fn(Kind, &str) -> bool) -> Vec<Diagnostic> {
    validate_with_positions(objects, &Positions::default(), exists)
}

/// `parse` then `validate`: the one entry point for apply, diff and watch.
pub fn load(sources: &[Source], exists: &dyn Fn(Kind, &str) -> bool) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let (objects, positions) = parse_with_positions(sources)?;
    let problems = validate_with_positions(&objects, &positions, exists);
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

/// A JSON Schema per kind, for `berth schema` and `schema/`.
pub fn schemas() -> Vec<(Kind, serde_json::Value)> {
    Kind::ALL.into_iter().map(|k| (k, document_schema(k))).collect()
}
