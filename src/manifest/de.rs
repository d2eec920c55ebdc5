//! A serde `Deserializer` over the [`Node`] tree ([`NodeDe`]) that fills the
//! types of [`super::types`], tracking the dotted field path
//! (`spec.volumes[1].hostPath`) so every problem is located.
//!
//! Unknown fields are recorded and skipped, so all of them are reported.
//! serde's derived code stops at the first value error, so the offending path
//! is then "poisoned" (read as a neutral placeholder) and the value is read
//! again: one pass per problem, until every problem is known ([`typed`]).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, Unexpected, Visitor};

use super::node::{Node, Pos, Problem, Value, ABSENT};
use super::positions::join;
use super::suggest::{did_you_mean, one_of, unknown_field_message, unknown_value_message};

/// Upper bound on problems collected from one document (one pass each).
const MAX_PROBLEMS_PER_DOCUMENT: usize = 64;

/// Reads `node` as a `T`, collecting every problem in it (see the module doc).
pub(super) fn typed<T: DeserializeOwned>(node: &Node, path: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let mut poisoned: Vec<String> = Vec::new();
    let mut found: Vec<Problem> = Vec::new();
    let value = loop {
        let state = State {
            poisoned: &poisoned,
            soft: RefCell::new(Vec::new()),
            misspelt: RefCell::new(Vec::new()),
        };
        let result = T::deserialize(NodeDe {
            node,
            path: path.to_owned(),
            st: &state,
        });
        for p in state.soft.into_inner() {
            push_unique(&mut found, p);
        }
        let misspelt = state.misspelt.into_inner();
        match result {
            Ok(value) => break Some(value),
            Err(err) => {
                let (at_path, at) = err.at.unwrap_or_else(|| (path.to_owned(), node.at));
                // An error inside a poisoned subtree means the placeholder did not
                // fit; stop rather than loop.
                let stuck = poisoned.iter().any(|p| under(&at_path, p));
                let explained = err.missing.is_some() && misspelt.contains(&at_path);
                if !stuck && !explained {
                    push_unique(
                        &mut found,
                        Problem {
                            path: at_path.clone(),
                            at,
                            message: err.message,
                        },
                    );
                }
                if stuck || poisoned.len() >= MAX_PROBLEMS_PER_DOCUMENT {
                    break None;
                }
                poisoned.push(at_path);
            }
        }
    };
    let clean = found.is_empty() && poisoned.is_empty();
    problems.extend(found);
    value.filter(|_| clean)
}

fn push_unique(found: &mut Vec<Problem>, p: Problem) {
    if !found.contains(&p) {
        found.push(p);
    }
}

/// Whether `path` is `prefix` or lies inside it.
fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), Some(b'.' | b'[')))
}

/// Per-pass state shared by the deserializers of one document.
struct State<'p> {
    /// Paths whose values are read as placeholders in this pass.
    poisoned: &'p [String],
    /// Problems that do not stop the pass (unknown fields).
    soft: RefCell<Vec<Problem>>,
    /// Paths of fields that an unknown field probably meant.
    misspelt: RefCell<Vec<String>>,
}

impl State<'_> {
    fn is_poisoned(&self, path: &str) -> bool {
        self.poisoned.iter().any(|p| under(path, p))
    }
}

/// A deserialization error, located by the innermost [`NodeDe`] that sees it.
#[derive(Debug)]
struct DeError {
    message: String,
    /// Set by `missing_field`: the error belongs to `path.field`.
    missing: Option<&'static str>,
    at: Option<(String, Pos)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// serde's names for what it expected, in manifest words.
fn expected_text(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    let range = |max: u64| format!("an integer from 0 to {max}");
    match text.as_str() {
        "u8" => range(u8::MAX.into()),
        "u16" => range(u16::MAX.into()),
        "u32" => range(u32::MAX.into()),
        "u64" => range(u64::MAX),
        "a map" => "a mapping".to_owned(),
        "a boolean" => "`true` or `false`".to_owned(),
        t if t.starts_with("struct ") => "a mapping".to_owned(),
        _ => text,
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            missing: None,
            at: None,
        }
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::custom(format_args!("expected {}, found {unexp}", expected_text(exp)))
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::custom(format_args!("expected {}, found {unexp}", expected_text(exp)))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(unknown_value_message(variant, expected))
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(unknown_field_message(field, expected))
    }
    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing field `{field}`"),
            missing: Some(field),
            at: None,
        }
    }
}

/// A serde `Deserializer` over one [`Node`] at a dotted `path`.
struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    st: &'a State<'a>,
}

impl<'a> NodeDe<'a> {
    fn poisoned(&self) -> bool {
        self.st.is_poisoned(&self.path)
    }

    fn child(&self, node: &'a Node, path: String) -> NodeDe<'a> {
        NodeDe {
            node,
            path,
            st: self.st,
        }
    }

    fn locate(path: &str, at: Pos, mut err: DeError) -> DeError {
        if err.at.is_none() {
            let path = match err.missing {
                Some(field) => join(path, field),
                None => path.to_owned(),
            };
            err.at = Some((path, at));
        }
        err
    }

    fn fail(&self, err: DeError) -> DeError {
        Self::locate(&self.path, self.node.at, err)
    }

    fn invalid(&self, exp: &dyn Expected) -> DeError {
        self.fail(de::Error::invalid_type(self.node.unexpected(), exp))
    }

    fn integer<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_u64(0);
        }
        let r = match self.node.value {
            Value::Uint(n) => v.visit_u64(n),
            Value::Int(n) => v.visit_i64(n),
            _ => return Err(self.invalid(&v)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn float<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_f64(0.0);
        }
        let r = match self.node.value {
            Value::Float(n) => v.visit_f64(n),
            Value::Uint(n) => v.visit_u64(n),
            Value::Int(n) => v.visit_i64(n),
            _ => return Err(self.invalid(&v)),
        };
        r.map_err(|e| self.fail(e))
    }
}

macro_rules! integers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.integer(v)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_unit();
        }
        let r = match &self.node.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Uint(n) => v.visit_u64(*n),
            Value::Int(n) => v.visit_i64(*n),
            Value::Float(n) => v.visit_f64(*n),
            Value::Str(s) => v.visit_str(s),
            Value::Seq(items) => v.visit_seq(SeqAcc::new(&self, items)),
            Value::Map(entries) => v.visit_map(MapAcc::new(&self, entries)),
        };
        r.map_err(|e| self.fail(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_bool(false);
        }
        match self.node.value {
            Value::Bool(b) => v.visit_bool(b).map_err(|e| self.fail(e)),
            _ => Err(self.invalid(&v)),
        }
    }

    integers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
              deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.float(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.float(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_str("");
        }
        match self.node.text() {
            Some(s) => v.visit_str(&s).map_err(|e| self.fail(e)),
            None => Err(self.invalid(&v)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() || self.node.value == Value::Null {
            return v.visit_none();
        }
        let (path, at) = (self.path.clone(), self.node.at);
        v.visit_some(self).map_err(|e| Self::locate(&path, at, e))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() || self.node.value == Value::Null {
            return v.visit_unit();
        }
        Err(self.invalid(&v))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, DeError> {
        let (path, at) = (self.path.clone(), self.node.at);
        v.visit_newtype_struct(self).map_err(|e| Self::locate(&path, at, e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_seq(SeqAcc::new(&self, &[]));
        }
        match &self.node.value {
            Value::Seq(items) => v.visit_seq(SeqAcc::new(&self, items)).map_err(|e| self.fail(e)),
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return v.visit_map(MapAcc::new(&self, &[]));
        }
        match &self.node.value {
            Value::Map(entries) => v.visit_map(MapAcc::new(&self, entries)).map_err(|e| self.fail(e)),
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        if self.poisoned() {
            // Every field present, each a placeholder (its path is poisoned too).
            let entries = fields.iter().map(|f| (*f, &ABSENT)).collect();
            return v.visit_map(StructAcc::new(&self, entries));
        }
        let Value::Map(map) = &self.node.value else {
            return Err(self.invalid(&v));
        };
        let mut entries = Vec::new();
        for (k, value) in map {
            match k.text() {
                Some(key) => match fields.iter().find(|f| **f == key) {
                    Some(field) => entries.push((*field, value)),
                    None => {
                        // `imagee: x` is reported once, not also as a missing `image`.
                        if let Some(meant) = did_you_mean(&key, fields.iter().copied()) {
                            self.st.misspelt.borrow_mut().push(join(&self.path, meant));
                        }
                        self.st.soft.borrow_mut().push(Problem {
                            path: join(&self.path, &key),
                            at: k.at,
                            message: unknown_field_message(&key, fields),
                        });
                    }
                },
                None => self.st.soft.borrow_mut().push(Problem {
                    path: self.path.clone(),
                    at: k.at,
                    message: format!("expected a field name, found {}", k.unexpected()),
                }),
            }
        }
        // A required field reported missing in an earlier pass is read as a
        // placeholder now, so the fields after it get checked too.
        for field in fields {
            if !entries.iter().any(|(f, _)| f == field) && self.st.is_poisoned(&join(&self.path, field)) {
                entries.push((*field, &ABSENT));
            }
        }
        v.visit_map(StructAcc::new(&self, entries)).map_err(|e| self.fail(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        if self.poisoned() {
            let first = variants.first().copied().unwrap_or_default();
            return v.visit_enum(IntoDeserializer::<DeError>::into_deserializer(first));
        }
        match self.node.text() {
            Some(s) => v
                .visit_enum(IntoDeserializer::<DeError>::into_deserializer(s.as_str()))
                .map_err(|e| self.fail(e)),
            None => Err(self.fail(de::Error::custom(format_args!(
                "expected {}, found {}",
                one_of(variants),
                self.node.unexpected()
            )))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqAcc<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    len: usize,
    path: String,
    st: &'a State<'a>,
}

impl<'a> SeqAcc<'a> {
    fn new(de: &NodeDe<'a>, items: &'a [Node]) -> Self {
        SeqAcc {
            items: items.iter().enumerate(),
            len: items.len(),
            path: de.path.clone(),
            st: de.st,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDe {
            node,
            path: format!("{}[{i}]", self.path),
            st: self.st,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

/// Entries of a free-form mapping (`labels`, `env`).
struct MapAcc<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<NodeDe<'a>>,
    path: String,
    st: &'a State<'a>,
}

impl<'a> MapAcc<'a> {
    fn new(de: &NodeDe<'a>, entries: &'a [(Node, Node)]) -> Self {
        MapAcc {
            entries: entries.iter(),
            value: None,
            path: de.path.clone(),
            st: de.st,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((k, v)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join(&self.path, &k.text().unwrap_or_else(|| "?".to_owned()));
        self.value = Some(NodeDe {
            node: v,
            path: path.clone(),
            st: self.st,
        });
        seed.deserialize(NodeDe {
            node: k,
            path,
            st: self.st,
        })
        .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        match self.value.take() {
            Some(de) => seed.deserialize(de),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The known fields of a struct's mapping, unknown ones already filtered out.
struct StructAcc<'a> {
    entries: std::vec::IntoIter<(&'static str, &'a Node)>,
    value: Option<NodeDe<'a>>,
    de: NodeDe<'a>,
}

impl<'a> StructAcc<'a> {
    fn new(de: &NodeDe<'a>, entries: Vec<(&'static str, &'a Node)>) -> Self {
        StructAcc {
            entries: entries.into_iter(),
            value: None,
            de: NodeDe {
                node: de.node,
                path: de.path.clone(),
                st: de.st,
            },
        }
    }
}

impl<'de> de::MapAccess<'de> for StructAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((field, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(self.de.child(node, join(&self.de.path, field)));
        seed.deserialize(IntoDeserializer::<DeError>::into_deserializer(field))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        match self.value.take() {
            Some(de) => seed.deserialize(de),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::testing::{errors, find, render, source};
    use crate::manifest::{parse, Spec};

    #[test]
    fn unknown_fields_suggest_the_field_that_was_meant() {
        let d = errors(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  imagee: shop\n  volumes:\n    - {volume: data, path: /data}\n    - {hostpath: /srv, path: /static}\n",
        );
        let imagee = find(&d, "unknown field `imagee`, did you mean `image`?");
        assert_eq!(
            (imagee.line, imagee.column, imagee.field.as_str()),
            (5, 3, "spec.imagee")
        );
        assert_eq!(imagee.snippet, "  imagee: shop");
        assert_eq!(imagee.file, "m.yaml");
        let hostpath = find(&d, "unknown field `hostpath`, did you mean `hostPath`?");
        assert_eq!((hostpath.line, hostpath.column), (8, 8));
        assert_eq!(hostpath.field, "spec.volumes[1].hostpath");
        // The misspelt `image` is not reported a second time as missing.
        assert_eq!(d.len(), 2, "{}", render(&d));
    }

    #[test]
    fn quantity_errors_carry_the_field_path_and_position() {
        let d = errors(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: shop\n  resources:\n    memory: 100MB\n    cpus: -1\n  stopGracePeriod: 10x\n",
        );
        let memory = find(&d, "malformed memory quantity \"100MB\"");
        assert_eq!((memory.line, memory.column), (7, 13));
        assert_eq!(memory.field, "spec.resources.memory");
        assert_eq!(memory.snippet, "    memory: 100MB");
        let cpus = find(&d, "malformed cpu quantity \"-1\"");
        assert_eq!(
            (cpus.line, cpus.column, cpus.field.as_str()),
            (8, 11, "spec.resources.cpus")
        );
        let grace = find(&d, "malformed duration \"10x\"");
        assert_eq!(
            (grace.line, grace.column, grace.field.as_str()),
            (9, 20, "spec.stopGracePeriod")
        );
        assert_eq!(d.len(), 3, "{}", render(&d));
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let d = errors(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: shop\n  command: sh -c true\n  ports: [{host: \"80\", container: 70000}]\n  volumes: [{tmpfs: /tmp, readOnly: yes}]\n  restartPolicy: sometimes\n  env: {A: [1]}\n",
        );
        let e = find(&d, "expected a sequence, found string \"sh -c true\"");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.command"));
        let e = find(&d, "expected an integer from 0 to 65535, found string \"80\"");
        assert_eq!((e.line, e.column, e.field.as_str()), (7, 18, "spec.ports[0].host"));
        let e = find(&d, "expected an integer from 0 to 65535, found integer `70000`");
        assert_eq!(e.field, "spec.ports[0].container");
        let e = find(&d, "expected `true` or `false`, found string \"yes\"");
        assert_eq!(e.field, "spec.volumes[0].readOnly");
        let e = find(
            &d,
            "unknown value `sometimes`, expected one of `always`, `on-failure`, `never`",
        );
        assert_eq!(e.field, "spec.restartPolicy");
        let e = find(&d, "expected a string, found sequence");
        assert_eq!(e.field, "spec.env.A");
    }

    #[test]
    fn missing_required_fields_are_named_by_path() {
        let d = errors("apiVersion: berth/v1\nkind: Container\nmetadata: {labels: {a: b}}\n");
        let name = find(&d, "missing field `name`");
        assert_eq!((name.line, name.field.as_str()), (3, "metadata.name"));
        let image = find(&d, "missing field `image`");
        assert_eq!(image.field, "spec.image");

        let d = errors("apiVersion: berth/v1\nkind: Container\nmetadata: {name: a}\nspec: {image: x, dependsOn: [{condition: started}]}\n");
        assert_eq!(find(&d, "missing field `name`").field, "spec.dependsOn[0].name");
    }

    #[test]
    fn non_finite_numbers_are_text_for_text_fields_and_errors_for_numbers() {
        let d = errors(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: shop\n  command: [echo, .inf, 0x1F]\n  resources: {cpus: .nan}\n",
        );
        let e = find(&d, "malformed cpu quantity \".nan\"");
        assert_eq!((e.line, e.field.as_str()), (7, "spec.resources.cpus"));
        assert_eq!(d.len(), 1, "{}", render(&d));

        let objects = parse(&[source(
            "m.yaml",
            "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: shop, command: [echo, .inf, 0x1F]}\n",
        )])
        .unwrap();
        let Spec::Container(c) = &objects[0].spec else {
            panic!("not a container")
        };
        assert_eq!(c.command, ["echo", ".inf", "0x1F"]);
    }
}
