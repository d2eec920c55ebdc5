//! `--format`: Go's text/template as Docker's CLI uses it, over the JSON
//! documents the daemon answers with. The engine is the `gotmpl` crate (a
//! reimplementation of Go's text/template); this module adds Docker's own
//! functions (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`,
//! `truncate`), its `table` prefix for listings, and its `json` shorthand.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, TemplateError, Value};

/// What a template may iterate in one execution, over all its `{{range}}`s:
/// far above any listing of one host's objects, low enough that a
/// `{{range 1000000000000}}` stops at once instead of running for hours.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;

/// Output one execution may produce: a template that repeats a big value
/// inside a range would otherwise fill memory before the range budget ends.
const MAX_OUTPUT_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template parsing error: {0} (see https://pkg.go.dev/text/template for the syntax)")]
    Parse(String),
    #[error("template: executing {template:?}: {message}")]
    Execute { template: String, message: String },
}

/// A parsed `--format`.
pub struct Format {
    source: String,
    template: Template,
    /// `table …`: a header row, columns aligned as Docker's tabwriter does.
    table: bool,
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Format").field("source", &self.source).finish()
    }
}

impl Format {
    /// Parses a `--format` value: `json` (each item as one JSON line),
    /// `table [TEMPLATE]`, or a template. For listings, `\t` and `\n`
    /// written literally become a tab and a newline, as Docker's CLI does.
    pub fn parse(src: &str) -> Result<Format, FormatError> {
        Format::parse_with(src, None)
    }

    /// As [`Format::parse`], with the template `table` alone stands for.
    pub fn parse_listing(src: &str, default_table: &str) -> Result<Format, FormatError> {
        Format::parse_with(src, Some(default_table))
    }

    fn parse_with(src: &str, default_table: Option<&str>) -> Result<Format, FormatError> {
        let mut text = src.to_string();
        let mut table = false;
        if text.trim() == "json" {
            text = "{{json .}}".into();
        } else if let Some(rest) = text.strip_prefix("table") {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                table = true;
                text = match (rest.trim(), default_table) {
                    ("", Some(default)) => default.to_string(),
                    (rest, _) => rest.to_string(),
                };
            }
        }
        if default_table.is_some() {
            text = text.trim().replace("\\t", "\t").replace("\\n", "\n");
        }
        let template = Template::new("")
            .max_range_iters(MAX_RANGE_ITERATIONS)
            .func("json", json)
            .func("join", join)
            .func("split", split)
            .func("lower", |a: &[Value]| map_str("lower", a, |s| s.to_lowercase()))
            .func("upper", |a: &[Value]| map_str("upper", a, |s| s.to_uppercase()))
            .func("title", |a: &[Value]| map_str("title", a, title))
            .func("pad", pad)
            .func("truncate", truncate)
            .parse(&text)
            .map_err(|e| FormatError::Parse(e.to_string()))?;
        Ok(Format {
            source: src.to_string(),
            template,
            table,
        })
    }

    pub fn is_table(&self) -> bool {
        self.table
    }

    /// The template executed over one document, as `inspect --format`
    /// prints it (the caller adds the newline).
    pub fn render(&self, data: &serde_json::Value) -> Result<String, FormatError> {
        let value = gotmpl::to_value(data).map_err(|e| self.exec_error(e))?;
        let mut out = Bounded(String::new());
        self.template
            .execute_fmt(&mut out, &value)
            .map_err(|e| self.exec_error(e))?;
        Ok(out.0)
    }

    /// A listing: one line per row; with `table`, a header row first (the
    /// template executed over `headers`, which maps each field to its
    /// column title) and the columns aligned.
    pub fn render_rows(
        &self,
        headers: &BTreeMap<&str, &str>,
        rows: &[serde_json::Value],
    ) -> Result<String, FormatError> {
        let mut lines = Vec::with_capacity(rows.len() + 1);
        if self.table {
            let header: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            lines.push(self.render(&serde_json::Value::Object(header))?);
        }
        for row in rows {
            lines.push(self.render(row)?);
        }
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if self.table {
            text = tabwrite(&text);
        }
        Ok(text)
    }

    fn exec_error(&self, e: impl std::fmt::Display) -> FormatError {
        FormatError::Execute {
            template: self.source.clone(),
            message: e.to_string(),
        }
    }
}

/// A `fmt::Write` that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Bounded(String);

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.0.len() + s.len() > MAX_OUTPUT_BYTES {
            return Err(std::fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// Aligns tab-separated cells as Docker's `tabwriter.NewWriter(w, 10, 1, 3,
/// ' ', 0)`: each column as wide as its widest cell plus 3, at least 10; the
/// last cell of a line is not padded.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter(|l| i + 1 < l.len())
                .map(|l| l[i].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            if i + 1 < line.len() {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

fn arg_count(name: &str, args: &[Value], want: usize) -> Result<(), TemplateError> {
    if args.len() == want {
        return Ok(());
    }
    Err(TemplateError::ArgCount {
        name: name.to_string(),
        expected: want,
        got: args.len(),
    })
}

fn string_arg<'a>(name: &str, v: &'a Value) -> Result<&'a str, TemplateError> {
    v.as_str()
        .ok_or_else(|| TemplateError::Exec(format!("{name}: wants a string, got {}", v.type_name())))
}

fn int_arg(name: &str, v: &Value) -> Result<usize, TemplateError> {
    match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| TemplateError::Exec(format!("{name}: {i} is negative"))),
        Value::Uint(u) => usize::try_from(*u).map_err(|_| TemplateError::Exec(format!("{name}: {u} is too large"))),
        other => Err(TemplateError::Exec(format!(
            "{name}: wants an integer, got {}",
            other.type_name()
        ))),
    }
}

fn map_str(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, TemplateError> {
    arg_count(name, args, 1)?;
    Ok(Value::String(f(&text_of(&args[0])).into()))
}

/// A value as Go's `fmt.Sprint` prints it, for the string functions
/// (Docker's take `string`, but scripts pass numbers through them too).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// `{{json .X}}`: the value as compact JSON, HTML characters not escaped,
/// as Docker's `json` function.
fn json(args: &[Value]) -> Result<Value, TemplateError> {
    arg_count("json", args, 1)?;
    let text = serde_json::to_string(&to_json(&args[0])).map_err(|e| TemplateError::Exec(format!("json: {e}")))?;
    Ok(Value::String(text.into()))
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        Value::Function(_) => J::Null,
    }
}

/// `{{join .X ","}}`: the list's elements joined.
fn join(args: &[Value]) -> Result<Value, TemplateError> {
    arg_count("join", args, 2)?;
    let sep = string_arg("join", &args[1])?;
    let parts: Vec<String> = match &args[0] {
        Value::List(items) => items.iter().map(text_of).collect(),
        Value::Nil => Vec::new(),
        other => {
            return Err(TemplateError::Exec(format!(
                "join: wants a list, got {}",
                other.type_name()
            )))
        }
    };
    Ok(Value::String(parts.join(sep).into()))
}

fn split(args: &[Value]) -> Result<Value, TemplateError> {
    arg_count("split", args, 2)?;
    let s = text_of(&args[0]);
    let sep = string_arg("split", &args[1])?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string().into())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.into())).collect()
    };
    Ok(Value::List(Arc::from(parts)))
}

/// `{{pad .X 1 2}}`: spaces before and after, as Docker's.
fn pad(args: &[Value]) -> Result<Value, TemplateError> {
    arg_count("pad", args, 3)?;
    let (before, after) = (int_arg("pad", &args[1])?, int_arg("pad", &args[2])?);
    if before.saturating_add(after) > 4096 {
        return Err(TemplateError::Exec("pad: at most 4096 spaces".into()));
    }
    let s = text_of(&args[0]);
    Ok(Value::String(
        format!("{}{s}{}", " ".repeat(before), " ".repeat(after)).into(),
    ))
}

/// `{{truncate .X 12}}`: at most that many characters.
fn truncate(args: &[Value]) -> Result<Value, TemplateError> {
    arg_count("truncate", args, 2)?;
    let n = int_arg("truncate", &args[1])?;
    Ok(Value::String(
        text_of(&args[0]).chars().take(n).collect::<String>().into(),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(t: &str, data: serde_json::Value) -> Result<String, FormatError> {
        Format::parse(t)?.render(&data)
    }

    fn doc() -> serde_json::Value {
        json!({
            "Id": "web",
            "State": {"Pid": 4242, "Running": true, "Status": "running"},
            "Config": {"Labels": {"tier": "front", "a<b": "x&y"}, "Env": ["A=1", "B=2"]},
            "NetworkSettings": {"Networks": {"n1": {"IPAddress": "10.0.0.2"}, "n2": {"IPAddress": "10.0.1.2"}}}
        })
    }

    #[test]
    fn fields_json_range_index_join_case_if_printf() {
        assert_eq!(render("{{.State.Pid}}", doc()).unwrap(), "4242");
        assert_eq!(
            render("{{json .Config.Labels}}", doc()).unwrap(),
            r#"{"a<b":"x&y","tier":"front"}"#
        );
        assert_eq!(
            render(
                "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
                doc()
            )
            .unwrap(),
            "n1=10.0.0.2 n2=10.0.1.2 "
        );
        assert_eq!(render(r#"{{index .Config.Labels "tier"}}"#, doc()).unwrap(), "front");
        assert_eq!(render(r#"{{join .Config.Env ","}}"#, doc()).unwrap(), "A=1,B=2");
        assert_eq!(
            render("{{upper .State.Status}} {{lower \"AbC\"}}", doc()).unwrap(),
            "RUNNING abc"
        );
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", doc()).unwrap(),
            "up"
        );
        assert_eq!(
            render(r#"{{printf "%s:%d" .Id .State.Pid}}"#, doc()).unwrap(),
            "web:4242"
        );
        assert_eq!(render("{{title \"hello world\"}}", doc()).unwrap(), "Hello World");
        assert_eq!(
            render("[{{pad \"x\" 1 2}}]{{truncate \"abcdef\" 3}}", doc()).unwrap(),
            "[ x  ]abc"
        );
        assert_eq!(
            render(r#"{{range split "a:b" ":"}}<{{.}}>{{end}}"#, doc()).unwrap(),
            "<a><b>"
        );
        assert_eq!(render("{{len .Config.Env}}", doc()).unwrap(), "2");
    }

    #[test]
    fn json_shorthand_is_the_whole_document() {
        let out = render("json", json!({"b": 1, "a": [true, null]})).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            json!({"a": [true, null], "b": 1})
        );
    }

    #[test]
    fn an_unknown_function_is_an_error_naming_it() {
        // Go refuses it when parsing; gotmpl when executing: either way no output.
        let err = render("{{nosuch .Id}}", doc()).unwrap_err();
        assert!(err.to_string().contains("nosuch"), "{err}");
    }

    #[test]
    fn indexing_a_non_map_is_an_execution_error() {
        let err = render(r#"{{index .State.Pid "x"}}"#, doc()).unwrap_err();
        assert!(matches!(err, FormatError::Execute { .. }), "{err}");
        let err = render(r#"{{join .State.Pid ","}}"#, doc()).unwrap_err();
        assert!(err.to_string().contains("join: wants a list"), "{err}");
    }

    #[test]
    fn a_huge_range_stops_at_the_budget() {
        let err = render("{{range 1000000000000}}x{{end}}", doc()).unwrap_err();
        assert!(err.to_string().contains("range"), "{err}");
        let err = render(r#"{{pad "x" 1000000000 1}}"#, doc()).unwrap_err();
        assert!(err.to_string().contains("4096"), "{err}");
    }

    #[test]
    fn a_table_has_a_header_and_aligned_columns() {
        let headers: BTreeMap<&str, &str> = [("Names", "NAMES"), ("Image", "IMAGE")].into();
        let f = Format::parse_listing(r"table {{.Names}}\t{{.Image}}", "").unwrap();
        assert!(f.is_table());
        let rows = [
            json!({"Names": "web", "Image": "busybox"}),
            json!({"Names": "a-long-name-here", "Image": "x"}),
        ];
        assert_eq!(
            f.render_rows(&headers, &rows).unwrap(),
            "NAMES              IMAGE\nweb                busybox\na-long-name-here   x\n"
        );
        // `table` alone is the command's default columns.
        let f = Format::parse_listing("table", r"{{.Names}}\t{{.Image}}").unwrap();
        assert!(f.render_rows(&headers, &rows).unwrap().starts_with("NAMES "));
        // Without `table`: one line per row, no header.
        let f = Format::parse_listing("{{.Names}}", "").unwrap();
        assert_eq!(f.render_rows(&headers, &rows).unwrap(), "web\na-long-name-here\n");
    }
}
