//! Image objects: exactly one source, references, digests.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn image(&mut self, o: &Object, spec: &ImageSpec) {
        let sources: Vec<&str> = [
            ("import", spec.import.is_some()),
            ("ref", spec.reference.is_some()),
            ("archive", spec.archive.is_some()),
            ("build", spec.build.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if sources.len() > 1 {
            let listed: Vec<String> = sources.iter().map(|s| format!("`{s}`")).collect();
            self.report(
                o,
                "spec",
                format!("an Image takes exactly one source, got {}", listed.join(" and ")),
            );
        }
        if let Some(reference) = &spec.reference {
            if let Err(why) = check_reference(reference) {
                self.report(
                    o,
                    "spec.ref",
                    format!("`{reference}` is not a registry reference: {why}"),
                );
            }
        } else if spec.pull_policy.is_some() || spec.platform.is_some() {
            let field = if spec.pull_policy.is_some() {
                "spec.pullPolicy"
            } else {
                "spec.platform"
            };
            self.report(
                o,
                field,
                "`pullPolicy` and `platform` apply only to an Image with `ref`",
            );
        }
        if let Some(platform) = &spec.platform {
            let parts: Vec<&str> = platform.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
                self.report(
                    o,
                    "spec.platform",
                    format!("platform `{platform}` is not os/arch or os/arch/variant (e.g. linux/amd64)"),
                );
            }
        }
        if let Some(path) = &spec.archive {
            if !is_absolute(path) {
                self.report(
                    o,
                    "spec.archive",
                    format!("`archive` must be an absolute path, got `{path}`"),
                );
            }
        }
        match &spec.import {
            None if spec.reference.is_none() && spec.archive.is_none() && spec.build.is_none() => self.report(
                o,
                "spec",
                "an Image needs a source: `ref` (a registry reference to pull), `archive` (a docker save or OCI archive), `import` (a root filesystem tar), paths absolute on the daemon's host, or `build` (a Dockerfile's context)",
            ),
            Some(path) if !is_absolute(path) => self.report(
                o,
                "spec.import",
                format!("`import` must be an absolute path, got `{path}`"),
            ),
            _ => {}
        }
        if spec.digest.is_some() && spec.import.is_none() {
            // A pulled image is pinned by `ref: repo@sha256:…`; an archive
            // names its own digests.
            self.report(
                o,
                "spec.digest",
                "`digest` checks an `import` tar: pin a registry image with `ref: REPO@sha256:…`",
            );
        }
        if let Some(digest) = &spec.digest {
            if !is_sha256_digest(digest) {
                self.report(
                    o,
                    "spec.digest",
                    format!("digest `{digest}` is malformed: expected `sha256:` and 64 lower-case hex digits"),
                );
            }
        }
        if let Some(build) = &spec.build {
            if build.context.trim().is_empty() {
                self.report(
                    o,
                    "spec.build.context",
                    "`context` names the build's directory, e.g. `./app`",
                );
            }
            if build.context_digest.is_some() {
                self.report(
                    o,
                    "spec.build.contextDigest",
                    "`contextDigest` is set by berth from the context's files; remove it",
                );
            }
            if let Some(f) = &build.dockerfile {
                if f.is_empty() || f.split('/').any(|c| c == "..") {
                    self.report(
                        o,
                        "spec.build.dockerfile",
                        format!("`dockerfile` is a path inside the context, got `{f}`"),
                    );
                }
            }
            for k in build.args.keys() {
                if k.is_empty() || k.contains(['=', ' ', '\t', '\n']) {
                    self.report(o, "spec.build.args", format!("`{k}` is not a build arg name"));
                }
            }
        }
        self.command(o, "spec.cmd", &spec.cmd);
        self.env(o, "spec.env", &spec.env);
    }
}

pub(super) fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

/// Whether `reference` parses as a registry reference; why not otherwise.
pub(super) fn check_reference(reference: &str) -> Result<(), String> {
    let parsed = crate::manifest::parse_reference(reference).map_err(|e| e.to_string())?;
    if parsed.repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lower-case".into());
    }
    Ok(())
}
