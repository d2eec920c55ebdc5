//! Layer garbage collection: image layers that no live image or container
//! refers to are removed after each pass.

use std::collections::HashSet;
use std::path::PathBuf;

use super::records::LiveInfo;
use super::Engine;

impl Engine {
    pub(super) fn collect_layers(&self) {
        let live = match self.live_all() {
            Ok(l) => l,
            Err(e) => {
                // Without knowing what is used, nothing may be removed.
                tracing::error!("layer GC skipped: {e}");
                return;
            }
        };
        let used: HashSet<PathBuf> = live
            .iter()
            .filter_map(|l| match &l.info {
                LiveInfo::Image(i) => Some(i.dir.clone()),
                LiveInfo::Container(c) => c.layer.clone(),
                _ => None,
            })
            .collect();
        let layers = match self.host.images.layers() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot list image layers: {e}");
                return;
            }
        };
        for layer in layers.into_iter().filter(|l| !used.contains(&l.dir)) {
            if let Err(e) = self.host.images.remove_layer(&layer.digest) {
                tracing::warn!("cannot remove unused layer {}: {e}", layer.digest);
            }
        }
    }
}
