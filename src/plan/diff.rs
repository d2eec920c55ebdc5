//! Field-by-field differences between two specs, for the reason of a Replace:
//! `spec.resources.memory: 64Mi -> 128Mi`.

use serde_json::{Map, Value};

use super::hash::spec_value;
use crate::manifest::Spec;

/// Longest rendering of one value before it is cut with `…`.
const MAX_VALUE_CHARS: usize = 60;

/// One line per changed leaf, as `path: old -> new`, sorted by path.
///
/// Objects are compared key by key (a missing object counts as empty, so a new
/// `resources:` reads `spec.resources.memory: (unset) -> 64Mi`). Arrays of
/// objects of equal length are compared element by element (`spec.volumes[0].path`);
/// other arrays (`spec.command`) are shown whole.
pub(crate) fn changes(old: &Spec, new: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    walk("", &spec_value(old), &spec_value(new), &mut out);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let empty = Map::new();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => walk_maps(path, a, b, out),
        (Value::Object(a), Value::Null) => walk_maps(path, a, &empty, out),
        (Value::Null, Value::Object(b)) => walk_maps(path, &empty, b, out),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() && a.iter().chain(b).all(Value::is_object) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ => out.push(format!("{path}: {} -> {}", render(old), render(new))),
    }
}

fn walk_maps(path: &str, a: &Map<String, Value>, b: &Map<String, Value>, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        walk(
            &child,
            a.get(k).unwrap_or(&Value::Null),
            b.get(k).unwrap_or(&Value::Null),
            out,
        );
    }
}

/// Strings bare (`64Mi`), absent values as `(unset)`, anything else as
/// compact JSON, cut to [`MAX_VALUE_CHARS`].
fn render(v: &Value) -> String {
    let text = match v {
        Value::Null => return "(unset)".into(),
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ContainerSpec, ImageSpec, Memory, Resources, VolumeMount};

    fn container(f: impl FnOnce(&mut ContainerSpec)) -> Spec {
        let mut c = ContainerSpec {
            image: "busybox".into(),
            command: vec!["sleep".into(), "1".into()],
            ..Default::default()
        };
        f(&mut c);
        Spec::Container(c)
    }

    #[test]
    fn equal_specs_have_no_changes() {
        assert!(changes(&container(|_| {}), &container(|_| {})).is_empty());
    }

    #[test]
    fn nested_scalar_changes_are_named_by_dotted_path() {
        let old = container(|c| {
            c.resources = Some(Resources {
                memory: Some(Memory(64 << 20)),
                ..Default::default()
            })
        });
        let new = container(|c| {
            c.resources = Some(Resources {
                memory: Some(Memory(128 << 20)),
                ..Default::default()
            })
        });
        assert_eq!(changes(&old, &new), ["spec.resources.memory: 64Mi -> 128Mi"]);
    }

    #[test]
    fn a_field_that_appears_or_disappears_reads_as_unset() {
        let old = container(|_| {});
        let new = container(|c| {
            c.resources = Some(Resources {
                pids: Some(200),
                ..Default::default()
            });
            c.env.insert("MODE".into(), "prod".into());
        });
        assert_eq!(
            changes(&old, &new),
            ["spec.env.MODE: (unset) -> prod", "spec.resources.pids: (unset) -> 200"]
        );
        assert_eq!(
            changes(&new, &old),
            ["spec.env.MODE: prod -> (unset)", "spec.resources.pids: 200 -> (unset)"]
        );
    }

    #[test]
    fn plain_arrays_are_shown_whole() {
        let old = container(|_| {});
        let new = container(|c| c.command = vec!["sleep".into(), "2".into()]);
        assert_eq!(changes(&old, &new), [r#"spec.command: ["sleep","1"] -> ["sleep","2"]"#]);
    }

    #[test]
    fn arrays_of_objects_of_equal_length_are_compared_by_element() {
        let mount = |read_only| VolumeMount {
            volume: Some("data".into()),
            path: Some("/data".into()),
            read_only,
            ..Default::default()
        };
        let old = container(|c| c.volumes = vec![mount(false)]);
        let new = container(|c| c.volumes = vec![mount(true)]);
        assert_eq!(changes(&old, &new), ["spec.volumes[0].readOnly: (unset) -> true"]);
    }

    #[test]
    fn long_values_are_cut() {
        let old = container(|_| {});
        let new = container(|c| c.command = vec!["x".repeat(100)]);
        let line = &changes(&old, &new)[0];
        assert!(line.ends_with('…'), "{line}");
        assert!(line.chars().count() < 160, "{line}");
    }

    #[test]
    fn a_different_kind_is_reported_as_a_kind_change() {
        let old = container(|_| {});
        let new = Spec::Image(ImageSpec::default());
        let lines = changes(&old, &new);
        assert!(lines.contains(&"kind: Container -> Image".to_string()), "{lines:?}");
    }
}
