//! Image references (`[domain[:port]/]path[:tag][@algo:hex]`), parsed by
//! hand after the grammar of distribution/reference, as oci-spec's regex
//! states it, with the same normalization (`docker.io`, `library/`).
//!
//! Why not oci-spec's `Reference::try_from`: its regex is compiled once per
//! process and kept, and the compiled form held about 12 MB of the daemon's
//! heap for good after the first `run` or `pull` (its idle RSS went from 17 to
//! 42 MiB after a benchmark run). A unit test checks this parser against
//! oci-spec's on generated input.

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const OFFICIAL: &str = "library";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing was given.
    #[error("repository name must have at least one component")]
    Empty,
    /// It does not follow the grammar.
    #[error("invalid reference format")]
    Format,
    /// The repository is longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// `@digest` is not `algorithm:hex`.
    #[error("invalid checksum digest format")]
    DigestFormat,
    /// The hex part does not fit the algorithm.
    #[error("invalid checksum digest length")]
    DigestLength,
    /// An algorithm other than sha256, sha384, sha512.
    #[error("unsupported digest algorithm")]
    DigestAlgorithm,
}

/// A reference split into its normal parts: `registry` is `docker.io` for
/// Docker Hub, whose one-component repositories get `library/`; `tag` is
/// `latest` when neither a tag nor a digest was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parses `s` as a reference.
pub fn parse_reference(s: &str) -> Result<ImageReference, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => {
            if !is_digest(digest) {
                return Err(ReferenceError::Format);
            }
            (rest, Some(digest))
        }
        None => (s, None),
    };
    // A ':' after the last '/' starts the tag; one before it is a port.
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => (&rest[..colon], Some(&rest[colon + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) || !is_name(name) {
        return Err(ReferenceError::Format);
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':').ok_or(ReferenceError::DigestFormat)?;
        let len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(ReferenceError::DigestAlgorithm),
        };
        if hex.len() != len {
            return Err(ReferenceError::DigestLength);
        }
    }
    let tag = match (tag, digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag.map(str::to_string),
    };
    Ok(ImageReference {
        registry,
        repository,
        tag,
        digest: digest.map(str::to_string),
    })
}

/// `[domain/]path(/path)*`: every component a path component, or a
/// domain first and path components after it.
fn is_name(name: &str) -> bool {
    let components: Vec<&str> = name.split('/').collect();
    let all_paths = |c: &[&str]| !c.is_empty() && c.iter().all(|p| is_path_component(p));
    all_paths(&components) || (components.len() > 1 && is_domain(components[0]) && all_paths(&components[1..]))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any run of `-`.
fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
}

/// `host[:port]`, host being dot-separated labels of letters, digits and
/// inner hyphens.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (d, None),
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    host.split('.').all(label) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[\w][\w.-]{0,127}` (ASCII word characters, as Docker's grammar means).
fn is_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty() && b.len() <= TAG_MAX && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `algo:hex`: algorithm components `[A-Za-z][A-Za-z0-9]*` joined by one of
/// `-_+.`, then at least 32 hex digits.
fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric())
    };
    algorithm.split(['-', '_', '+', '.']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Docker's normalization: the first component is a registry when it has a
/// `.` or `:` or is `localhost`; otherwise the name is on Docker Hub, where
/// official images live under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((left, right)) if left.contains(['.', ':']) || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_string();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("{OFFICIAL}/{remainder}");
    }
    (domain, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// oci-spec's parse of `s`, in this module's terms.
    fn oci(s: &str) -> Option<ImageReference> {
        let r = oci_client::Reference::try_from(s).ok()?;
        Some(ImageReference {
            registry: r.registry().to_string(),
            repository: r.repository().to_string(),
            tag: r.tag().map(str::to_string),
            digest: r.digest().map(str::to_string),
        })
    }

    #[test]
    fn references_parse_as_docker_normalizes_them() {
        let hex = "a".repeat(64);
        let cases = [
            ("busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("index.docker.io/x/y:1", "docker.io", "x/y", Some("1"), None),
            ("localhost:5000/a/b", "localhost:5000", "a/b", Some("latest"), None),
            ("localhost/a", "localhost", "a", Some("latest"), None),
            (
                "127.0.0.1:5000/a__b--c.d:v1.0-x",
                "127.0.0.1:5000",
                "a__b--c.d",
                Some("v1.0-x"),
                None,
            ),
        ];
        for (s, registry, repository, tag, digest) in cases {
            let r = parse_reference(s).unwrap();
            assert_eq!(
                (
                    r.registry.as_str(),
                    r.repository.as_str(),
                    r.tag.as_deref(),
                    r.digest.as_deref()
                ),
                (registry, repository, tag, digest),
                "{s}"
            );
        }
        let pinned = parse_reference(&format!("r.io/a@sha256:{hex}")).unwrap();
        assert_eq!((pinned.tag, pinned.digest), (None, Some(format!("sha256:{hex}"))));
        for bad in [
            "",
            "UPPER",
            "a..b",
            "a/",
            "/a",
            "a:",
            "a:-x",
            "a@sha256:abc",
            "a b",
            "a@md5:{hex}",
        ] {
            let bad = bad.replace("{hex}", &hex);
            assert!(parse_reference(&bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_reference(&format!("a@sha256:{}", "a".repeat(31))),
            Err(ReferenceError::Format)
        );
        assert_eq!(
            parse_reference(&format!("a@sha256:{}", "a".repeat(70))),
            Err(ReferenceError::DigestLength)
        );
        assert_eq!(
            parse_reference(&format!("a@blake3:{hex}")),
            Err(ReferenceError::DigestAlgorithm)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn the_hand_parser_agrees_with_oci_specs_regex(
            s in "([a-zA-Z0-9]{0,3}[-._:/@]{0,2}){0,6}(@sha(256|512):[0-9a-f]{64})?"
        ) {
            let ours = parse_reference(&s).ok();
            prop_assert_eq!(ours, oci(&s), "{:?}", s);
        }

        #[test]
        fn the_hand_parser_agrees_on_well_formed_shapes(
            domain in "(([a-z0-9-]{1,4}\\.){0,2}[a-zA-Z0-9-]{1,4}(:[0-9]{1,5})?/)?",
            path in "[a-z0-9]{1,3}(([._-]|__|--)[a-z0-9]{1,3}){0,2}(/[a-z0-9]{1,3}){0,2}",
            tag in "(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,8})?",
        ) {
            let s = format!("{domain}{path}{tag}");
            prop_assert_eq!(parse_reference(&s).ok(), oci(&s), "{:?}", s);
        }
    }
}
