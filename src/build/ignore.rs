//! TEMPORARY stub (replaced by h-dockerfile's implementation at merge).
use std::path::Path;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IgnoreError(String);
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<String>,
}
pub fn parse_ignore(text: &str) -> Result<IgnoreRules, IgnoreError> {
    Ok(IgnoreRules {
        patterns: text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
    })
}
impl IgnoreRules {
    pub fn excluded(&self, rel_path: &str) -> bool {
        self.patterns.iter().any(|p| p == rel_path)
    }
}
pub fn read_ignore(context_dir: &Path, _dockerfile_rel: &str) -> Result<IgnoreRules, IgnoreError> {
    parse_ignore(&std::fs::read_to_string(context_dir.join(".dockerignore")).unwrap_or_default())
}
