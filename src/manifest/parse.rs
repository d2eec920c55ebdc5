//! Reading manifest text into typed [`Object`]s, with every problem located.
//!
//! The stages, one file each:
//!
//! 1. [`super::read`] reads each YAML document of a source into a
//!    [`super::node`] tree that keeps the line and column of every value,
//!    within budgets (size, alias expansion, nesting depth).
//! 2. [`document`] checks `apiVersion` and `kind`, then the serde
//!    `Deserializer` of [`super::de`] fills `metadata` and the kind's `spec`,
//!    collecting every problem; unknown names get a [`super::suggest`]ion.
//!
//! Positions of the fields of good documents are kept in [`Positions`], so
//! that [`super::validate`] can point at the field it complains about.

use super::de::typed;
use super::node::{Node, Pos, Problem, Value};
use super::positions::{source_line, Positions};
use super::read;
use super::suggest::{did_you_mean, one_of, unknown_field_message};
use super::types::{ContainerSpec, ImageSpec, Kind, Metadata, NetworkSpec, Object, Origin, Spec, VolumeSpec};
use super::{printable, Diagnostic, Source};

/// The only `apiVersion` berth reads.
pub const API_VERSION: &str = "berth/v1";

/// The top-level fields of every document.
const DOCUMENT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

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
    if let Err(refused) = read::check_size(file, text.len()) {
        out.push(refused);
        return;
    }
    positions.add_text(file, text);
    let mut problems = Vec::new();
    let documents = read::documents(text);
    if documents.is_empty() {
        // An empty file is a mistake (a truncated write, the wrong file), not an
        // empty set: applying it would otherwise succeed and do nothing.
        problems.push(Problem {
            path: String::new(),
            at: Pos { line: 1, column: 1 },
            message: "no documents found: the file is empty or holds only comments and `---`".to_owned(),
        });
    }
    for item in documents {
        let root = match item {
            Ok(root) => root,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let before = problems.len();
        if let Some(object) = document(&root, file, &mut problems) {
            if problems.len() == before {
                positions.add_object(&object.origin, &root);
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

fn kind_names() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{errors, find, render, source, FULL};
    use crate::manifest::{parse, DependencyCondition, Memory, RestartPolicy};

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
    fn an_empty_file_is_reported_as_holding_no_documents() {
        let d = parse(&[source("e.yaml", "")]).unwrap_err();
        assert_eq!(d.len(), 1, "{}", render(&d));
        assert_eq!(
            d[0].to_string(),
            "e.yaml:1:1: no documents found: the file is empty or holds only comments and `---`"
        );
    }

    #[test]
    fn a_file_of_only_markers_and_comments_is_reported_as_holding_no_documents() {
        for text in [
            "---\n",
            "---\n# nothing\n",
            "# just a comment\n\n  \n",
            "---\n---\n...\n",
        ] {
            let d = parse(&[source("f.yaml", text)]).unwrap_err();
            let e = find(&d, "no documents found");
            assert_eq!(
                (e.file.as_str(), e.line, e.column, e.field.as_str()),
                ("f.yaml", 1, 1, ""),
                "{text:?}"
            );
        }
    }

    #[test]
    fn each_empty_source_gets_its_own_diagnostic() {
        let good = "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\n";
        let d = parse(&[
            source("e.yaml", ""),
            source("g.yaml", good),
            source("f.yaml", "---\n# nothing\n"),
        ])
        .unwrap_err();
        let got: Vec<(&str, usize, usize)> = d.iter().map(|d| (d.file.as_str(), d.line, d.column)).collect();
        assert_eq!(got, [("e.yaml", 1, 1), ("f.yaml", 1, 1)], "{}", render(&d));
        assert!(d.iter().all(|d| d.message.starts_with("no documents found")));
    }

    #[test]
    fn unknown_fields_without_a_close_match_list_the_expected_fields() {
        let d = errors("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {flavour: fast}\n");
        let e = find(&d, "unknown field `flavour`");
        assert_eq!(
            e.message,
            "unknown field `flavour`, expected one of `driver`, `driverOpts`"
        );
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
    fn networks_take_a_name_or_the_long_form_and_unknown_fields_are_named() {
        let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: bb\n  networks:\n    - front\n    - {name: back, aliases: [api], ipv4Address: 10.89.3.7}\n";
        let objects = parse(&[source("n.yaml", text)]).unwrap_or_else(|d| panic!("{}", render(&d)));
        let Spec::Container(c) = &objects[0].spec else {
            panic!("not a container")
        };
        assert_eq!(c.networks[0], "front");
        assert_eq!(c.networks[1].name, "back");
        assert_eq!(c.networks[1].aliases, ["api"]);
        assert_eq!(c.networks[1].ipv4_address.as_deref(), Some("10.89.3.7"));
        // Both forms serialize back as they were written.
        let json = serde_json::to_value(&c.networks).unwrap();
        assert_eq!(json[0], "front");
        assert_eq!(json[1]["ipv4Address"], "10.89.3.7");
        let bad = text.replace("aliases: [api]", "alias: [api]");
        let d = parse(&[source("n.yaml", &bad)]).unwrap_err();
        assert!(render(&d).contains("alias"), "{}", render(&d));
    }
}
