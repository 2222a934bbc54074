//! The `object_store` document store: S3 and S3-compatible servers
//! (`s3://bucket/prefix`), Google Cloud Storage (`gs://`), Azure Blob
//! (`az://`) or a local directory (`file:///dir`), with each cloud's
//! credentials from its usual environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`…).
//!
//! Content lives at `<prefix>/sha256/<first two hex digits>/<sha256>`. It is
//! streamed to `<prefix>/tmp/<uuid>` as a multipart upload (parts of
//! [`PART_SIZE`], S3's minimum, at most two in flight), hashed on the way,
//! then moved to its address unless that already exists: each content is
//! written once, and an upload cut off half way never has an address.

use std::sync::Arc;

use futures::{future::BoxFuture, StreamExt, TryStreamExt};
use object_store::{path::Path, prefix::PrefixStore, ObjectStore, WriteMultipart};

use super::{ByteStream, Digesting, DocumentStore, DocumentStoreError, ReadStream, Stored};
use crate::config::{invalid, ConfigError};

/// Bytes per uploaded part: S3's minimum for all but the last.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploading at once: memory stays about this many parts.
const PARTS_IN_FLIGHT: usize = 2;

/// Documents in an object store.
pub struct ObjectDocuments {
    store: Arc<dyn ObjectStore>,
    url: String,
}

fn backend(error: object_store::Error) -> DocumentStoreError {
    DocumentStoreError::Backend(error.to_string())
}

impl ObjectDocuments {
    /// The store `url` names (`SIGNHOOK_DOCUMENT_STORE`), with credentials
    /// from the environment. A local directory is created if missing.
    pub fn open(url: &reqwest::Url) -> Result<Self, ConfigError> {
        let bad = |e: &dyn std::fmt::Display| invalid("document_store", format!("`{url}` cannot be opened: {e}"));
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url.to_file_path().map_err(|()| bad(&"not a local path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(&e))?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(&e))?)
            }
            scheme => {
                let cloud: Arc<dyn ObjectStore> = match scheme {
                    "s3" | "s3a" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(url.as_str())
                            .build()
                            .map_err(|e| bad(&e))?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(url.as_str())
                            .build()
                            .map_err(|e| bad(&e))?,
                    ),
                    _ => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(url.as_str())
                            .build()
                            .map_err(|e| bad(&e))?,
                    ),
                };
                match prefix.is_empty() {
                    true => cloud,
                    false => Arc::new(PrefixStore::new(cloud, prefix)),
                }
            }
        };
        Ok(Self {
            store,
            url: url.to_string(),
        })
    }

    fn address(sha256: &str) -> Path {
        Path::from(format!("sha256/{}/{sha256}", &sha256[..2.min(sha256.len())]))
    }

    async fn write(&self, mut body: ByteStream<'_>, expected: Option<u64>) -> Result<Stored, DocumentStoreError> {
        let staging = Path::from(format!("tmp/{}", uuid::Uuid::new_v4().simple()));
        let upload = self.store.put_multipart(&staging).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut digest = Digesting::default();
        let streamed = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(DocumentStoreError::Source)?;
                digest.update(&chunk);
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(backend)?;
                writer.write(&chunk);
            }
            Ok::<_, DocumentStoreError>(())
        }
        .await;
        if let Err(error) = streamed {
            let _ = writer.abort().await;
            return Err(error);
        }
        let (sha256, size) = match digest.finish(expected) {
            Ok(done) => done,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        };
        writer.finish().await.map_err(backend)?;
        let address = Self::address(&sha256);
        let written = match self.store.head(&address).await {
            Ok(_) => {
                let _ = self.store.delete(&staging).await;
                false
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.store.rename(&staging, &address).await.map_err(backend)?;
                true
            }
            Err(error) => return Err(backend(error)),
        };
        Ok(Stored { sha256, size, written })
    }
}

impl DocumentStore for ObjectDocuments {
    fn put<'a>(
        &'a self,
        body: ByteStream<'a>,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Stored, DocumentStoreError>> {
        Box::pin(self.write(body, expected))
    }

    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<ReadStream, DocumentStoreError>> {
        Box::pin(async move {
            let found = self
                .store
                .get(&Self::address(sha256))
                .await
                .map_err(|error| match error {
                    object_store::Error::NotFound { .. } => DocumentStoreError::Missing(sha256.to_owned()),
                    other => backend(other),
                })?;
            Ok(found.into_stream().map_err(backend).boxed())
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
