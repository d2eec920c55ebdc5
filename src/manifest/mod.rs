//! Manifests: the four kinds, parsing with positions, validation and the
//! JSON Schema. Pure: no file, kernel or store access; callers hand in text.

pub mod quantity;
pub mod types;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use quantity::{Cpus, Duration, Memory};
pub use types::*;

/// One manifest text and the name it is reported under (a path, or `<stdin>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub text: String,
}

/// One problem in a manifest, located precisely enough to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )?;
        if !self.snippet.is_empty() {
            for l in self.snippet.lines() {
                write!(f, "\n    | {l}")?;
            }
        }
        Ok(())
    }
}

/// Parses every document of every source. Returns all problems at once.
pub fn parse(sources: &[Source]) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let _ = sources;
    todo!("manifest::parse")
}

/// Checks a parsed set as a whole: names, duplicates, references, cycles,
/// ports, unsupported fields. `exists(kind, name)` answers for objects that are
/// not in the set but already known to the daemon (from other sources).
pub fn validate(objects: &[Object], exists: &dyn Fn(Kind, &str) -> bool) -> Vec<Diagnostic> {
    let _ = (objects, exists);
    todo!("manifest::validate")
}

/// `parse` then `validate`: the one entry point for apply, diff and watch.
pub fn load(sources: &[Source], exists: &dyn Fn(Kind, &str) -> bool) -> Result<Vec<Object>, Vec<Diagnostic>> {
    let objects = parse(sources)?;
    let problems = validate(&objects, exists);
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

/// A JSON Schema per kind, for `berth schema` and `schema/`.
pub fn schemas() -> Vec<(Kind, serde_json::Value)> {
    todo!("manifest::schemas")
}
