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
    }
}
