//! Reading manifest text into typed [`Object`]s, with every problem located.
//!
//! Two stages:
//!
//! 1. serde-saphyr reads each YAML document into a [`Node`] tree that keeps the
//!    line and column of every value. Its budget refuses alias bombs and deep
//!    nesting before they cost time or memory, and it rejects duplicate keys.
//! 2. A serde `Deserializer` over that tree ([`NodeDe`]) fills the types of
//!    [`super::types`], tracking the dotted field path (`spec.volumes[1].hostPath`).
//!    Unknown fields are recorded and skipped, so all of them are reported.
//!    serde's derived code stops at the first value error, so the offending
//!    path is then "poisoned" (read as a neutral placeholder) and the document
//!    is read again: one pass per problem, until every problem is known.
//!
//! Positions of the fields of good documents are kept in [`Positions`], so
//! that [`super::validate`] can point at the field it complains about.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, Unexpected, Visitor};
use serde::Deserialize;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::MessageFormatter;

use super::types::{ContainerSpec, ImageSpec, Kind, Metadata, NetworkSpec, Object, Origin, Spec, VolumeSpec};
use super::{Diagnostic, Source};

/// The only `apiVersion` berth reads.
pub const API_VERSION: &str = "berth/v1";

/// Deepest nesting of mappings and sequences accepted in a document; real
/// manifests need about six levels.
pub const MAX_DEPTH: usize = 32;

/// Most nodes that aliases may replay in one document. Legitimate manifests
/// reuse a few small anchors; a "billion laughs" needs millions.
pub const MAX_ALIAS_EVENTS: usize = 10_000;

/// Largest manifest text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 << 20;

/// Upper bound on problems collected from one document (one pass each).
const MAX_PROBLEMS_PER_DOCUMENT: usize = 64;

/// The top-level fields of every document.
const DOCUMENT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

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
pub(crate) fn source_line(text: &str, line: usize) -> String {
    line.checked_sub(1)
        .and_then(|i| text.lines().nth(i))
        .map(|l| l.trim_end_matches('\r').to_owned())
        .unwrap_or_default()
}

/// [`super::parse`], also returning where each field was written.
pub fn parse_with_positions(sources: &[Source]) -> Result<(Vec<Object>, Positions), Vec<Diagnostic>> {
    let mut objects = Vec::new();
    let mut positions = Positions::default();
    let mut diagnostics = Vec::new();
    for source in sources {
        read_source(source, &mut objects, &mut positions, &mut diagnostics);
    }
    if diagnostics.is_empty() {
        Ok((objects, positions))
    } else {
        Err(diagnostics)
    }
}

fn read_source(source: &Source, objects: &mut Vec<Object>, positions: &mut Positions, out: &mut Vec<Diagnostic>) {
    let file = source.file.as_str();
    let text = source.text.as_str();
    if text.len() > MAX_SOURCE_BYTES {
        out.push(Diagnostic {
            file: file.to_owned(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!(
                "manifest of {} bytes refused: at most {MAX_SOURCE_BYTES} bytes are accepted",
                text.len()
            ),
            snippet: String::new(),
        });
        return;
    }
    positions.texts.insert(file.to_owned(), text.to_owned());
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut bytes = text.as_bytes();
    // `read_with_options` yields one item per document, skips empty ones, goes on
    // after a document that fails to deserialize and stops after a syntax error
    // or a budget breach.
    for item in serde_saphyr::read_with_options::<_, Node>(&mut bytes, yaml_options()) {
        let mut root = match item {
            Ok(root) => root,
            Err(err) => {
                let (line, column) = err
                    .location()
                    .map(|l| (to_usize(l.line()), to_usize(l.column())))
                    .unwrap_or((0, 0));
                problems.push(Problem {
                    path: String::new(),
                    at: Pos { line, column },
                    message: yaml_message(&err),
                });
                continue;
            }
        };
        attach_raw_text(&mut root, &lines);
        let before = problems.len();
        if let Some(object) = document(&root, file, &mut problems) {
            if problems.len() == before {
                let mut fields = HashMap::new();
                record_positions(&root, "", &mut fields);
                let o = &object.origin;
                positions.fields.insert((o.file.clone(), o.line, o.column), fields);
                objects.push(object);
            }
        }
    }
    problems.sort_by_key(|p| (p.at.line, p.at.column));
    out.extend(problems.into_iter().map(|p| Diagnostic {
        file: file.to_owned(),
        line: p.at.line,
        column: p.at.column,
        field: printable(&p.path),
        snippet: printable(&source_line(text, p.at.line)),
        message: printable(&p.message),
    }));
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // Only `true`/`false` are booleans: `yes`, `on`, `n` stay text (the "Norway problem").
        strict_booleans: true,
        // `.inf` and `.nan` reach the types as text; a number field then says
        // what it expected instead of the whole document failing.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        // berth renders its own snippets.
        with_snippet: false,
        emit_comments: false,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 100_000,
            max_total_scalar_bytes: MAX_SOURCE_BYTES,
            max_reader_input_bytes: Some(MAX_SOURCE_BYTES),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
        },
    }
}

/// A message for a YAML-level error (syntax, duplicate key, refused input),
/// without serde-saphyr's "at line X, column Y" suffix: the diagnostic has those.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    let mut inner = err.without_snippet();
    while let E::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let bomb = || {
        format!("refused: aliases expand to more than {MAX_ALIAS_EVENTS} nodes (an alias bomb?); write the values out")
    };
    let deep = || format!("refused: nested more than {MAX_DEPTH} levels deep");
    match inner {
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => bomb(),
        E::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => deep(),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::MergeKeys { .. } => bomb(),
            _ => format!(
                "refused: {}",
                printable(&serde_saphyr::UserMessageFormatter.format_message(inner))
            ),
        },
        other => {
            let message = printable(&serde_saphyr::UserMessageFormatter.format_message(other));
            // The scanner enforces the flow nesting limit itself, with this wording.
            if message.contains("recursion limit") {
                deep()
            } else {
                message
            }
        }
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

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A 1-based position in a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

/// One problem found while reading a document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    path: String,
    at: Pos,
    message: String,
}

/// A YAML value as serde-saphyr typed it (booleans, numbers, null, text),
/// before berth's types give it meaning.
#[derive(Debug, Clone, PartialEq)]
enum Value {
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
struct Node {
    value: Value,
    /// Where the node is used (for an alias: the `*alias` token).
    at: Pos,
    /// Where the node was written (for an alias: the anchored node).
    defined: Pos,
    /// Length in characters of the scalar at `defined`.
    chars: usize,
    /// Source text of a plain boolean or number, so that `user: 1000` or
    /// `version: 1.10` read into a string field keep their spelling.
    raw: Option<String>,
}

/// Stands for a field that is absent but poisoned: always read as a placeholder.
static ABSENT: Node = Node {
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

fn attach_raw_text(node: &mut Node, lines: &[&str]) {
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
    fn text(&self) -> Option<String> {
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
    fn quoted(&self) -> String {
        match self.text() {
            Some(t) => format!("`{t}`"),
            None => self.unexpected().to_string(),
        }
    }

    fn unexpected(&self) -> Unexpected<'_> {
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
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Whether `path` is `prefix` or lies inside it.
fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), Some(b'.' | b'[')))
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

/// Reads one document's root node into an object, or records why not.
fn document(root: &Node, file: &str, problems: &mut Vec<Problem>) -> Option<Object> {
    let origin = Origin {
        file: file.to_owned(),
        line: root.at.line,
        column: root.at.column,
    };
    let Value::Map(entries) = &root.value else {
        problems.push(Problem {
            path: String::new(),
            at: root.at,
            message: format!(
                "expected a manifest: a mapping with `apiVersion`, `kind`, `metadata` and `spec`, found {}",
                root.unexpected()
            ),
        });
        return None;
    };

    let (mut api_version, mut kind, mut metadata, mut spec) = (None, None, None, None);
    for (k, v) in entries {
        match k.text().as_deref() {
            Some("apiVersion") => api_version = Some(v),
            Some("kind") => kind = Some(v),
            Some("metadata") => metadata = Some(v),
            Some("spec") => spec = Some(v),
            Some(other) => problems.push(Problem {
                path: other.to_owned(),
                at: k.at,
                message: unknown_field_message(other, DOCUMENT_FIELDS),
            }),
            None => problems.push(Problem {
                path: String::new(),
                at: k.at,
                message: format!("expected a field name, found {}", k.unexpected()),
            }),
        }
    }

    let missing = |field: &str, what: &str| Problem {
        path: field.to_owned(),
        at: root.at,
        message: format!("missing field `{field}`: expected {what}"),
    };

    match api_version {
        None => problems.push(missing("apiVersion", &format!("`{API_VERSION}`"))),
        Some(v) => match v.text() {
            Some(s) if s == API_VERSION => {}
            _ => problems.push(Problem {
                path: "apiVersion".into(),
                at: v.at,
                message: format!("unsupported apiVersion {}: expected `{API_VERSION}`", v.quoted()),
            }),
        },
    }

    let kind = match kind {
        None => {
            problems.push(missing("kind", &one_of(&kind_names())));
            None
        }
        Some(v) => {
            let text = v.text();
            let kind = Kind::ALL.into_iter().find(|k| Some(k.as_str()) == text.as_deref());
            if kind.is_none() {
                let message = match text.as_deref().and_then(|t| did_you_mean(t, kind_names())) {
                    Some(s) => format!("unknown kind {}, did you mean `{s}`?", v.quoted()),
                    None => format!("unknown kind {}, expected {}", v.quoted(), one_of(&kind_names())),
                };
                problems.push(Problem {
                    path: "kind".into(),
                    at: v.at,
                    message,
                });
            }
            kind
        }
    };

    let metadata = match metadata {
        None => {
            problems.push(missing("metadata", "a mapping with `name`"));
            None
        }
        Some(node) => typed::<Metadata>(node, "metadata", problems),
    };

    // A missing `spec` reads as an empty one: a Volume needs nothing more, and
    // a Container is told which fields it lacks.
    let empty = Node {
        value: Value::Map(Vec::new()),
        ..root.clone_position()
    };
    let spec_node = spec.unwrap_or(&empty);
    let spec = match kind? {
        Kind::Image => typed::<ImageSpec>(spec_node, "spec", problems).map(Spec::Image),
        Kind::Container => typed::<ContainerSpec>(spec_node, "spec", problems).map(Spec::Container),
        Kind::Network => typed::<NetworkSpec>(spec_node, "spec", problems).map(Spec::Network),
        Kind::Volume => typed::<VolumeSpec>(spec_node, "spec", problems).map(Spec::Volume),
    };
    Some(Object {
        metadata: metadata?,
        spec: spec?,
        origin,
    })
}

impl Node {
    /// A scalar-less copy of this node's position.
    fn clone_position(&self) -> Node {
        Node {
            value: Value::Null,
            at: self.at,
            defined: self.defined,
            chars: 0,
            raw: None,
        }
    }
}

fn kind_names() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.as_str()).collect()
}

/// "one of `a`, `b`, `c`" (or "`a`" alone).
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing".to_owned(),
        1 => quoted[0].clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

pub(crate) fn unknown_field_message(field: &str, expected: &[&str]) -> String {
    match did_you_mean(field, expected.iter().copied()) {
        Some(s) => format!("unknown field `{field}`, did you mean `{s}`?"),
        None if expected.is_empty() => format!("unknown field `{field}`, there are no fields here"),
        None => format!("unknown field `{field}`, expected {}", one_of(expected)),
    }
}

/// The candidate closest to `input`, if it is close enough to be a typo:
/// differing only in case, or within a small edit distance (a swap of two
/// neighbouring letters counts as one edit).
pub(crate) fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_lowercase();
    let budget = match lower.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .into_iter()
        .filter(|c| *c != input)
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// Reads `node` as a `T`, collecting every problem in it (see the module doc).
fn typed<T: DeserializeOwned>(node: &Node, path: &str, problems: &mut Vec<Problem>) -> Option<T> {
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
        Self::custom(match did_you_mean(variant, expected.iter().copied()) {
            Some(s) => format!("unknown value `{variant}`, did you mean `{s}`?"),
            None => format!("unknown value `{variant}`, expected {}", one_of(expected)),
        })
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
    use std::time::{Duration, Instant};

    use super::*;
    use crate::manifest::testing::{find, render};
    use crate::manifest::{parse, DependencyCondition, RestartPolicy};

    fn source(file: &str, text: &str) -> Source {
        Source {
            file: file.to_owned(),
            text: text.to_owned(),
        }
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        match parse(&[source("m.yaml", text)]) {
            Ok(objects) => panic!("expected problems, parsed {objects:#?}"),
            Err(diagnostics) => diagnostics,
        }
    }

    const FULL: &str = r#"# a whole stack
apiVersion: berth/v1
kind: Image
metadata: {name: shop-web}
spec:
  import: /srv/images/shop-web.tar
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  cmd: ["httpd", "-f"]
  env: {PATH: /bin}
---
apiVersion: berth/v1
kind: Container
metadata:
  name: web
  labels: {app: shop}
spec:
  image: shop-web
  command: ["httpd", "-f", "-p", "80"]
  env: {MODE: prod, VERSION: 1.10, ENABLED: yes}
  workingDir: /srv
  user: 1000
  networks: [backend]
  ports: [{host: 8080, container: 80}]
  volumes:
    - {volume: data, path: /data}
    - {hostPath: /srv/static, path: /static, readOnly: true}
    - {tmpfs: /tmp, size: 64Mi}
  resources: {cpus: 0.5, memory: 100Mi, pids: 200, cpuShares: 512}
  restartPolicy: on-failure
  healthcheck: {exec: ["wget", "-q", "-O-", "http://localhost/"], interval: 5s, retries: 3}
  dependsOn: [{name: db, condition: healthy}, {name: init}]
  stopGracePeriod: 1m30s
---
---
apiVersion: berth/v1
kind: Volume
metadata: {name: data}
spec: {driver: local}
"#;

    #[test]
    fn a_full_example_parses_into_every_field() {
        let objects = parse(&[source("stack.yaml", FULL)]).unwrap_or_else(|d| panic!("{}", render(&d)));
        assert_eq!(objects.len(), 3);
        let Spec::Image(image) = &objects[0].spec else {
            panic!("not an image")
        };
        assert_eq!(image.import.as_deref(), Some("/srv/images/shop-web.tar"));
        assert_eq!(image.cmd, ["httpd", "-f"]);

        let web = &objects[1];
        assert_eq!(web.name(), "web");
        assert_eq!(web.metadata.labels["app"], "shop");
        let Spec::Container(c) = &web.spec else {
            panic!("not a container")
        };
        assert_eq!(c.image, "shop-web");
        assert_eq!(c.command, ["httpd", "-f", "-p", "80"]);
        // Plain numbers and `yes` in string fields keep their spelling.
        assert_eq!(c.env["VERSION"], "1.10");
        assert_eq!(c.env["ENABLED"], "yes");
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.networks, ["backend"]);
        assert_eq!((c.ports[0].host, c.ports[0].container), (8080, 80));
        assert_eq!(c.volumes.len(), 3);
        assert_eq!(c.volumes[1].host_path.as_deref(), Some("/srv/static"));
        assert!(c.volumes[1].read_only);
        assert_eq!(c.volumes[2].size, Some(Memory(64 << 20)));
        let r = c.resources.as_ref().unwrap();
        assert_eq!(r.cpus, Some(crate::manifest::Cpus(0.5)));
        assert_eq!(r.memory, Some(Memory(100 << 20)));
        assert_eq!((r.pids, r.cpu_shares), (Some(200), Some(512)));
        assert_eq!(c.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(c.healthcheck.as_ref().unwrap().retries, Some(3));
        assert_eq!(c.depends_on[0].condition, DependencyCondition::Healthy);
        assert_eq!(c.depends_on[1].condition, DependencyCondition::Started);
        assert_eq!(c.stop_grace_period.unwrap().0.as_secs(), 90);

        assert_eq!(objects[2].kind(), Kind::Volume);
    }

    use crate::manifest::Memory;

    #[test]
    fn documents_of_several_files_parse_in_order_with_their_origins() {
        let a = "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: one}\n---\n\n---\n# comment\n  \n---\nkind: Volume\napiVersion: berth/v1\nmetadata: {name: two}\n";
        let b = "---\n  apiVersion: berth/v1\n  kind: Volume\n  metadata: {name: three}\n";
        let objects = parse(&[source("a.yaml", a), source("b.yaml", b)]).unwrap();
        let got: Vec<(&str, &str, usize, usize)> = objects
            .iter()
            .map(|o| (o.name(), o.origin.file.as_str(), o.origin.line, o.origin.column))
            .collect();
        assert_eq!(
            got,
            [
                ("one", "a.yaml", 1, 1),
                ("two", "a.yaml", 10, 1),
                ("three", "b.yaml", 2, 3)
            ]
        );
        // A missing `spec` reads as an empty one.
        assert_eq!(objects[0].spec, Spec::Volume(VolumeSpec::default()));
    }

    #[test]
    fn empty_sources_give_no_objects() {
        assert_eq!(
            parse(&[source("e.yaml", ""), source("f.yaml", "---\n# nothing\n")]),
            Ok(vec![])
        );
    }

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
    fn unknown_fields_without_a_close_match_list_the_expected_fields() {
        let d = errors("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {flavour: fast}\n");
        let e = find(&d, "unknown field `flavour`");
        assert_eq!(e.message, "unknown field `flavour`, expected `driver`");
        assert_eq!((e.line, e.column, e.field.as_str()), (4, 8, "spec.flavour"));

        let d = errors("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nstatus: {}\n");
        find(
            &d,
            "unknown field `status`, expected one of `apiVersion`, `kind`, `metadata`, `spec`",
        );
    }

    #[test]
    fn misspelt_kinds_get_a_did_you_mean() {
        let d = errors("apiVersion: berth/v1\nkind: Contianer\nmetadata: {name: web}\nspec: {image: x}\n");
        let e = find(&d, "unknown kind");
        assert_eq!(e.message, "unknown kind `Contianer`, did you mean `Container`?");
        assert_eq!((e.line, e.column, e.field.as_str()), (2, 7, "kind"));

        let d = errors("apiVersion: berth/v1\nkind: volume\nmetadata: {name: v}\n");
        find(&d, "unknown kind `volume`, did you mean `Volume`?");

        let d = errors("apiVersion: berth/v1\nkind: Pod\nmetadata: {name: v}\n");
        find(
            &d,
            "unknown kind `Pod`, expected one of `Image`, `Container`, `Network`, `Volume`",
        );
    }

    #[test]
    fn api_version_must_be_berth_v1() {
        let d = errors("apiVersion: v1\nkind: Volume\nmetadata: {name: v}\n");
        let e = find(&d, "unsupported apiVersion `v1`: expected `berth/v1`");
        assert_eq!((e.line, e.column), (1, 13));

        let d = errors("kind: Volume\nmetadata: {name: v}\n");
        let e = find(&d, "missing field `apiVersion`");
        assert_eq!((e.line, e.column, e.field.as_str()), (1, 1, "apiVersion"));
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
    fn all_problems_of_all_documents_and_files_are_reported_at_once() {
        let a = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web, nam: x}\nspec:\n  image: shop\n  resources: {memory: 1XB, pids: many}\n  restartPolicy: sometimes\n---\napiVersion: berth/v2\nkind: Volume\nmetadata: {name: data}\nspec: {drive: local}\n";
        let b = "apiVersion: berth/v1\nkind: Imag\nmetadata: {name: shop}\n";
        let d = parse(&[source("a.yaml", a), source("b.yaml", b)]).unwrap_err();
        let got: Vec<(&str, usize, &str)> = d.iter().map(|d| (d.file.as_str(), d.line, d.field.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a.yaml", 3, "metadata.nam"),
                ("a.yaml", 6, "spec.resources.memory"),
                ("a.yaml", 6, "spec.resources.pids"),
                ("a.yaml", 7, "spec.restartPolicy"),
                ("a.yaml", 9, "apiVersion"),
                ("a.yaml", 12, "spec.drive"),
                ("b.yaml", 2, "kind"),
            ],
            "{}",
            render(&d)
        );
    }

    #[test]
    fn yaml_errors_are_located_and_the_other_documents_still_checked() {
        let text = "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: a, name: b}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: ok, colour: red}\n---\nmetadata: [unclosed\n";
        let d = errors(text);
        let dup = find(&d, "duplicate mapping key `name`");
        assert_eq!((dup.line, dup.column), (3, 21));
        find(&d, "unknown field `colour`");
        let syntax = d.last().unwrap();
        assert_eq!((syntax.line, syntax.field.as_str()), (9, ""));
        assert!(syntax.message.contains("unclosed"), "{}", render(&d));

        let d = errors("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(d[0].message, "illegal placement of ':' indicator");
        assert_eq!((d[0].line, d[0].column), (3, 2));
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

    #[test]
    fn diagnostics_display_as_file_line_column_field_and_snippet() {
        let d = errors("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {drivr: x}\n");
        assert_eq!(
            d[0].to_string(),
            "m.yaml:4:8: spec.drivr: unknown field `drivr`, did you mean `driver`?\n    | spec: {drivr: x}"
        );
        let d = errors("a: [1,\n");
        assert!(d[0].to_string().starts_with("m.yaml:1:"), "{}", d[0]);
        assert!(!d[0].to_string().contains(": :"), "{}", d[0]);
    }

    #[test]
    fn control_characters_in_diagnostics_are_escaped() {
        let d = errors("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {\"dr\\eiver\": x}\n");
        assert_eq!(d[0].field, "spec.dr\\u{1b}iver");
        assert!(d[0].message.starts_with("unknown field `dr\\u{1b}iver`"), "{}", d[0]);
        assert!(!d[0].to_string().contains('\u{1b}'));
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_reported() {
        let d = errors("- apiVersion: berth/v1\n");
        find(
            &d,
            "expected a manifest: a mapping with `apiVersion`, `kind`, `metadata` and `spec`, found sequence",
        );
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut text =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
        }
        let start = Instant::now();
        let d = errors(&text);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        find(&d, "refused: aliases expand to more than");
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let flow = format!("spec: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let block: String = (0..500).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        for text in [flow, block] {
            let start = Instant::now();
            let d = errors(&text);
            assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
            find(&d, &format!("refused: nested more than {MAX_DEPTH} levels deep"));
        }
    }

    #[test]
    fn oversized_sources_are_refused_without_reading_them() {
        let text = "#".repeat(MAX_SOURCE_BYTES + 1);
        let d = errors(&text);
        find(&d, "bytes refused");
    }

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

    #[test]
    fn did_you_mean_tolerates_swaps_case_and_small_typos_only() {
        let fields = ["image", "command", "hostPath", "volumes"];
        assert_eq!(did_you_mean("imagee", fields), Some("image"));
        assert_eq!(did_you_mean("comand", fields), Some("command"));
        assert_eq!(did_you_mean("hostpath", fields), Some("hostPath"));
        assert_eq!(did_you_mean("volmues", fields), Some("volumes"));
        assert_eq!(did_you_mean("labels", fields), None);
        assert_eq!(did_you_mean("im", fields), None);
    }
}
