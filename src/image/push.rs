//! Pushing a pulled image to a registry: its blobs exactly as stored (so
//! the manifest, pushed last and byte for byte, keeps its digest), each
//! skipped when the registry has it already, layers streamed from disk.

use oci_client::RegistryOperation;

use super::error::{ImageError, Result};
use super::pull::{auth_with, classify, Credentials};
use super::record::normalize;
use super::ImageStore;

impl ImageStore {
    /// Pushes the image `source` names to `target` (a reference; `source`
    /// itself when `None`). Returns the pushed manifest's digest.
    pub async fn push(&self, source: &str, target: Option<&str>) -> Result<String> {
        self.push_as(source, target, None).await
    }

    /// [`ImageStore::push`] with `credentials` instead of `config.json`'s.
    pub async fn push_as(
        &self,
        source: &str,
        target: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let record = self.image(source).ok_or_else(|| ImageError::NotFound {
            reference: source.into(),
        })?;
        let target = normalize(target.unwrap_or(source))?;
        let whole = target.whole();
        let registry = target.registry().to_string();
        let client = self.client_for(&registry);
        let auth = auth_with(&registry, credentials);
        client
            .auth(&target, &auth, RegistryOperation::Push)
            .await
            .map_err(|e| classify(&target, e))?;
        let mut blobs: Vec<String> = record.layers.iter().map(|l| l.digest.clone()).collect();
        blobs.push(record.id.clone());
        for digest in blobs {
            if client
                .blob_exists(&target, &digest)
                .await
                .map_err(|e| classify(&target, e))?
            {
                continue;
            }
            let path = self.content.path(&digest)?;
            let file = tokio::fs::File::open(&path).await.map_err(|source| ImageError::Store {
                path: path.clone(),
                source,
            })?;
            let size = file.metadata().await.ok().map(|m| m.len());
            let stream = futures_util::stream::unfold(file, |mut file| async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 1 << 20];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(hyper::body::Bytes::from(buf)), file))
                    }
                    Err(e) => Some((Err(e.into()), file)),
                }
            });
            client
                .push_blob_stream(&target, stream, &digest, size)
                .await
                .map_err(|e| classify(&target, e))?;
        }
        let manifest = self.content.read(&record.manifest_digest)?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
        let content_type = hyper::header::HeaderValue::from_str(&media_type).map_err(|e| ImageError::BadImage {
            reference: whole.clone(),
            reason: format!("its manifest media type {media_type:?}: {e}"),
        })?;
        client
            .push_manifest_raw(&target, manifest, content_type)
            .await
            .map_err(|e| classify(&target, e))?;
        Ok(record.manifest_digest)
    }
}
