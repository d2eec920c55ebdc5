//! Helpers shared by the manifest module's tests.

use super::{parse, Diagnostic, Source};

/// The one diagnostic whose message contains `needle`.
pub(crate) fn find<'d>(diagnostics: &'d [Diagnostic], needle: &str) -> &'d Diagnostic {
    let found: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.message.contains(needle)).collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "expected one diagnostic containing {needle:?}, got:\n{}",
            render(diagnostics)
        ),
    }
}

pub(crate) fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

/// A source named `file`.
pub(crate) fn source(file: &str, text: &str) -> Source {
    Source {
        file: file.to_owned(),
        text: text.to_owned(),
    }
}

/// The diagnostics of parsing `text` as `m.yaml`, which must have problems.
pub(crate) fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(&[source("m.yaml", text)]) {
        Ok(objects) => panic!("expected problems, parsed {objects:#?}"),
        Err(diagnostics) => diagnostics,
    }
}

/// A whole stack using every field: an Image, a Container and a Volume.
pub(crate) const FULL: &str = r#"# a whole stack
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
