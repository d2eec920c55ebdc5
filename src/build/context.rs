//! TEMPORARY stub (replaced by h-dockerfile's implementation at merge).
use super::ignore::IgnoreRules;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(String);
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    ignore: IgnoreRules,
}
impl Context {
    pub fn open(dir: &Path, ignore: IgnoreRules) -> Result<Context, ContextError> {
        Ok(Context {
            dir: dir.to_path_buf(),
            ignore,
        })
    }
    pub fn resolve(&self, source: &str) -> Result<Vec<String>, ContextError> {
        let rel = source
            .trim_start_matches('/')
            .trim_start_matches("./")
            .trim_end_matches('/');
        let rel = if rel.is_empty() || rel == "." {
            String::new()
        } else {
            rel.to_string()
        };
        if rel.split('/').any(|c| c == "..") {
            return Err(ContextError(format!("{source}: outside the build context")));
        }
        if std::fs::symlink_metadata(self.dir.join(&rel)).is_err() {
            return Err(ContextError(format!("{source}: not found in the build context")));
        }
        Ok(vec![rel])
    }
    pub fn hash(&self, rels: &[String]) -> Result<String, ContextError> {
        let mut h = Sha256::new();
        for rel in rels {
            for (r, m) in self.walk(rel)? {
                h.update(r.as_bytes());
                h.update(format!("{} {} {}", m.mode(), m.uid(), m.gid()).as_bytes());
                if m.is_file() {
                    h.update(std::fs::read(self.dir.join(&r)).map_err(|e| ContextError(e.to_string()))?);
                }
            }
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }
    pub fn walk(&self, rel: &str) -> Result<Vec<(String, std::fs::Metadata)>, ContextError> {
        let mut out = Vec::new();
        let path = self.dir.join(rel);
        let m = std::fs::symlink_metadata(&path).map_err(|e| ContextError(format!("{rel}: {e}")))?;
        let is_dir = m.is_dir();
        out.push((rel.to_string(), m));
        if is_dir {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| ContextError(e.to_string()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                let child = if rel.is_empty() { n } else { format!("{rel}/{n}") };
                if self.ignore.excluded(&child) {
                    continue;
                }
                out.extend(self.walk(&child)?);
            }
        }
        Ok(out)
    }
}
