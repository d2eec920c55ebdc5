//! Volume objects: the local driver.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn volume(&mut self, o: &Object, spec: &VolumeSpec) {
        if let Some(driver) = &spec.driver {
            if driver != "local" {
                self.report(
                    o,
                    "spec.driver",
                    format!("volume driver `{driver}` is not supported: the only driver is `local`"),
                );
            }
        }

        self.driver_opts(o, spec);
    }

    /// The local driver's `type`, `device` and `o`, as Docker's: a mount
    /// needs `type` and `device` together; a bind (`o=bind`) needs an
    /// absolute `device` directory; a `size=` in `o` is a Docker size.
    fn driver_opts(&mut self, o: &Object, spec: &VolumeSpec) {
        let opts = &spec.driver_opts;
        let mut unknown = false;
        for key in opts.keys() {
            if !["type", "device", "o"].contains(&key.as_str()) {
                unknown = true;
                self.report(
                    o,
                    &format!("spec.driverOpts.{key}"),
                    format!("unknown local driver option `{key}`: the options are `type`, `device` and `o`"),
                );
            }
        }
        if opts.is_empty() || unknown {
            return;
        }
        let (typ, device) = (opts.get("type"), opts.get("device"));
        if typ.is_none() || device.is_none() {
            self.report(
                o,
                "spec.driverOpts",
                "the local driver mounts only with both `type` and `device` (e.g. type=tmpfs, device=tmpfs)",
            );
            return;
        }
        let (typ, device) = (
            typ.map(String::as_str).unwrap_or_default(),
            device.map(String::as_str).unwrap_or_default(),
        );
        let flags: Vec<&str> = opts.get("o").map(|o| o.split(',').collect()).unwrap_or_default();
        let bind = flags.iter().any(|f| *f == "bind" || *f == "rbind");
        if !typ.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') || typ.is_empty() {
            self.report(o, "spec.driverOpts.type", format!("`{typ}` is not a filesystem type"));
        }
        if bind && typ != "none" {
            self.report(o, "spec.driverOpts.type", "a bind (`o=bind`) takes `type: none`");
        }
        if (bind || typ != "tmpfs") && (!device.starts_with('/') || device.split('/').any(|p| p == "..")) {
            self.report(
                o,
                "spec.driverOpts.device",
                format!("`device` must be an absolute host path without `..`, got `{device}`"),
            );
        }
        if typ == "none" && !bind {
            self.report(
                o,
                "spec.driverOpts.o",
                "`type: none` needs `o: bind` (a bind of `device`)",
            );
        }
        for flag in flags {
            if let Some(size) = flag.strip_prefix("size=") {
                if crate::manifest::quantity::parse_docker_size(size).is_err() {
                    self.report(
                        o,
                        "spec.driverOpts.o",
                        format!("`size={size}` is not a size: give bytes or a number with b, k, m or g"),
                    );
                }
            } else if flag.is_empty() || flag.contains(['\0', ' ']) {
                self.report(o, "spec.driverOpts.o", format!("`{flag}` is not a mount option"));
            }
        }
    }
}
