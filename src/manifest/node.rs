//! The node tree: a YAML document as serde-saphyr typed its scalars, with the
//! line and column of every value, before berth's types give it meaning.
//!
//! Also the [`Problem`] that every reading stage records against a position.

use std::fmt;

use serde::de::{self, Unexpected, Visitor};
use serde::Deserialize;

/// A 1-based position in a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

/// One problem found while reading a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub(super) path: String,
    pub(super) at: Pos,
    pub(super) message: String,
}

/// A YAML value as serde-saphyr typed it (booleans, numbers, null, text),
/// before berth's types give it meaning.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML node with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub(super) value: Value,
    /// Where the node is used (for an alias: the `*alias` token).
    pub(super) at: Pos,
    /// Where the node was written (for an alias: the anchored node).
    pub(super) defined: Pos,
    /// Length in characters of the scalar at `defined`.
    pub(super) chars: usize,
    /// Source text of a plain boolean or number, so that `user: 1000` or
    /// `version: 1.10` read into a string field keep their spelling.
    pub(super) raw: Option<String>,
}

/// Stands for a field that is absent but poisoned: always read as a placeholder.
pub(super) static ABSENT: Node = Node {
    value: Value::Null,
    at: Pos { line: 0, column: 0 },
    defined: Pos { line: 0, column: 0 },
    chars: 0,
    raw: None,
};

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(d)?;
        let pos = |l: serde_saphyr::Location| Pos {
            line: to_usize(l.line()),
            column: to_usize(l.column()),
        };
        Ok(Node {
            value: spanned.value,
            at: pos(spanned.referenced),
            defined: pos(spanned.defined),
            chars: to_usize(spanned.defined.span().len()),
            raw: None,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Uint(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

/// Fills [`Node::raw`] of plain booleans and numbers from the source `lines`.
pub(super) fn attach_raw_text(node: &mut Node, lines: &[&str]) {
    match &mut node.value {
        Value::Bool(_) | Value::Uint(_) | Value::Int(_) | Value::Float(_) => {
            let line = node.defined.line.checked_sub(1).and_then(|i| lines.get(i));
            if let (Some(line), Some(skip)) = (line, node.defined.column.checked_sub(1)) {
                let raw: String = line.chars().skip(skip).take(node.chars).collect();
                if !raw.is_empty() {
                    node.raw = Some(raw);
                }
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| attach_raw_text(n, lines)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            attach_raw_text(k, lines);
            attach_raw_text(v, lines);
        }),
        Value::Null | Value::Str(_) => {}
    }
}

impl Node {
    /// The node as text, if it is a scalar: strings as they are, plain booleans
    /// and numbers as written.
    pub(super) fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(self.raw.clone().unwrap_or_else(|| b.to_string())),
            Value::Uint(n) => Some(self.raw.clone().unwrap_or_else(|| n.to_string())),
            Value::Int(n) => Some(self.raw.clone().unwrap_or_else(|| n.to_string())),
            Value::Float(n) => Some(self.raw.clone().unwrap_or_else(|| n.to_string())),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A scalar as `` `text` ``, anything else as serde describes it.
    pub(super) fn quoted(&self) -> String {
        match self.text() {
            Some(t) => format!("`{t}`"),
            None => self.unexpected().to_string(),
        }
    }

    pub(super) fn unexpected(&self) -> Unexpected<'_> {
        match &self.value {
            Value::Null => Unexpected::Other("null"),
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Uint(n) => Unexpected::Unsigned(*n),
            Value::Int(n) => Unexpected::Signed(*n),
            Value::Float(n) => Unexpected::Float(*n),
            Value::Str(s) => Unexpected::Str(s),
            Value::Seq(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
        }
    }

    /// A scalar-less copy of this node's position.
    pub(super) fn clone_position(&self) -> Node {
        Node {
            value: Value::Null,
            at: self.at,
            defined: self.defined,
            chars: 0,
            raw: None,
        }
    }
}

pub(super) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
