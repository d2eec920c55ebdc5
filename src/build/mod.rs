//! Images built from Dockerfiles (issue 21).
//!
//! The pure front half lives here: [`dockerfile`] parses the file into stages
//! and instructions with positions, [`subst`] expands variables with Docker's
//! shell-word rules, [`ignore`] reads `.dockerignore` patterns, and
//! [`context`] resolves, hashes and walks the files of one build's context.
//! None of them runs anything or knows about manifests or HTTP.
//!
//! # Where variables are expanded
//!
//! The parser keeps every word as written. As in Docker, the builder expands
//! with [`subst::expand`] (escape character [`dockerfile::Dockerfile::escape`],
//! build args and `ENV` so far as the lookup) the arguments of `ADD`, `COPY`
//! (sources, destination, `--from`/`--chown`/`--chmod`), `ENV` and `LABEL`
//! (names and values), `ARG` defaults, `EXPOSE`, `FROM` (image and
//! `--platform`, with the global `ARG`s only), `STOPSIGNAL`, `USER`,
//! `VOLUME` and `WORKDIR`; the body of a `COPY`/`ADD` heredoc whose
//! delimiter was unquoted with [`subst::expand_raw`]. `RUN`, `CMD`,
//! `ENTRYPOINT`, `SHELL` and `HEALTHCHECK` commands are not expanded: the
//! shell in the container does that.

pub mod context;
pub mod dockerfile;
pub mod ignore;
pub mod subst;
