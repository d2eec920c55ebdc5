//! Where the fields of parsed objects were written, so that [`super::validate`]
//! can point at the field it complains about, and the dotted field paths
//! (`spec.volumes[1].hostPath`) those positions are keyed by.

use std::collections::HashMap;

use super::node::{Node, Value};
use super::types::Origin;

/// Where the fields of parsed objects were written, for [`super::validate_with_positions`].
///
/// Keyed by the object's [`Origin`] (a document start is unique within a file)
/// and the dotted field path. Also keeps each source's text for snippets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    texts: HashMap<String, String>,
    fields: HashMap<OriginKey, FieldPositions>,
}

/// An object's origin as (file, line, column).
type OriginKey = (String, usize, usize);
/// Line and column of each dotted field path of one object.
type FieldPositions = HashMap<String, (usize, usize)>;

impl Positions {
    /// Line and column of `path` in the object that starts at `origin`: the
    /// field itself if known, else its nearest enclosing field, else the origin.
    pub fn locate(&self, origin: &Origin, path: &str) -> (usize, usize) {
        let key = (origin.file.clone(), origin.line, origin.column);
        if let Some(fields) = self.fields.get(&key) {
            let mut p = path;
            loop {
                if let Some(&at) = fields.get(p) {
                    return at;
                }
                match parent_path(p) {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
        }
        (origin.line, origin.column)
    }

    /// The text of `line` (1-based) of `file`, or an empty string.
    pub fn snippet(&self, file: &str, line: usize) -> String {
        self.texts
            .get(file)
            .map(|text| source_line(text, line))
            .unwrap_or_default()
    }

    /// Keeps the text of `file` for snippets.
    pub(super) fn add_text(&mut self, file: &str, text: &str) {
        self.texts.insert(file.to_owned(), text.to_owned());
    }

    /// Records the fields of the good document `root`, read into the object
    /// that starts at `origin`.
    pub(super) fn add_object(&mut self, origin: &Origin, root: &Node) {
        let mut fields = HashMap::new();
        record_positions(root, "", &mut fields);
        self.fields
            .insert((origin.file.clone(), origin.line, origin.column), fields);
    }
}

/// `spec.volumes[1].path` → `spec.volumes[1]` → `spec.volumes` → `spec` → `None`.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// The text of `line` (1-based), without its line ending.
pub(super) fn source_line(text: &str, line: usize) -> String {
    line.checked_sub(1)
        .and_then(|i| text.lines().nth(i))
        .map(|l| l.trim_end_matches('\r').to_owned())
        .unwrap_or_default()
}

pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Records where each field of a good document was written: a scalar at its
/// value, a mapping or sequence at its key.
fn record_positions(node: &Node, path: &str, out: &mut HashMap<String, (usize, usize)>) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let Some(key) = k.text() else { continue };
                let child = join(path, &key);
                let at = if matches!(v.value, Value::Map(_) | Value::Seq(_)) {
                    k.at
                } else {
                    v.at
                };
                out.insert(child.clone(), (at.line, at.column));
                record_positions(v, &child, out);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let child = format!("{path}[{i}]");
                out.insert(child.clone(), (item.at.line, item.at.column));
                record_positions(item, &child, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::parse_with_positions;
    use crate::manifest::testing::{source, FULL};

    #[test]
    fn positions_point_at_fields_and_fall_back_to_enclosing_ones() {
        let (objects, positions) = parse_with_positions(&[source("stack.yaml", FULL)]).unwrap();
        let web = &objects[1];
        assert_eq!(positions.locate(&web.origin, "spec.image"), (17, 10));
        assert_eq!(positions.locate(&web.origin, "spec.volumes[1].hostPath"), (26, 18));
        // Not written: the nearest enclosing field.
        assert_eq!(positions.locate(&web.origin, "spec.volumes[2].path"), (27, 7));
        assert_eq!(positions.locate(&web.origin, "spec.nothing"), (16, 1));
        assert_eq!(positions.snippet("stack.yaml", 17), "  image: shop-web");
    }
}
