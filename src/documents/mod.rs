//! Copies of completed agreements: the signed PDF and, where the provider has
//! one, the audit trail. The store records a fetch job in the transaction
//! that completes an agreement; `fetcher.rs` works the jobs off (an Adobe
//! payload's `signedDocumentInfo` first, else the provider's API within its
//! shared budget) and writes the bytes once, by SHA-256, to a
//! [`DocumentStore`]: PostgreSQL (`store::Blobs`) or any `object_store`
//! backend ([`object`]).
//!
//! This module holds the vocabulary providers and the store share (it sits
//! below both, like `event.rs`): what a provider can be asked for
//! ([`DocumentRef`]), what a download is ([`Download`]) and the storage
//! interface.

pub mod object;

use bytes::Bytes;
use futures::{future::BoxFuture, stream::BoxStream};
use sha2::{Digest, Sha256};

pub use crate::config::StoreLocation;

/// The signed document (Adobe: the combined PDF; BoldSign: the signed
/// document; FuseSign: the bundle's first signed PDF).
pub const SIGNED: &str = "signed";
/// The provider's audit trail (Adobe, BoldSign; FuseSign has none in its API).
pub const AUDIT_TRAIL: &str = "audit_trail";

/// Whether `kind` is one signhook stores: `signed`, `audit_trail`, or
/// `signed_<n>` (n ≥ 2) for the further documents of a FuseSign bundle.
pub fn is_kind(kind: &str) -> bool {
    kind == SIGNED
        || kind == AUDIT_TRAIL
        || kind
            .strip_prefix("signed_")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
}

/// The kind of the `index`th (0-based) signed document of an agreement.
pub fn signed_kind(index: usize) -> String {
    match index {
        0 => SIGNED.to_owned(),
        n => format!("signed_{}", n + 1),
    }
}

/// One document to ask a provider's API for, as the provider module
/// describes it (the path and query are its own; the fetcher only hands
/// them back to [`crate::providers::Provider::download`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRef {
    pub kind: String,
    /// Suggested file name (`Content-Disposition`); sanitized when served.
    pub file_name: String,
    /// Path segments below the API base, and the query.
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    /// The `Accept` header the endpoint documents.
    pub accept: &'static str,
}

/// A download in progress: the answer's headers and its body as a stream,
/// so no document is ever held whole in memory.
pub struct Download {
    pub content_type: String,
    /// `Content-Length`, when the provider sent one: a body that ends early
    /// is a failed (retried) fetch, never a stored document.
    pub length: Option<u64>,
    pub body: ByteStream<'static>,
}

/// A document carried by a notification itself (Adobe's
/// `signedDocumentInfo.document`, base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineDocument {
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What a [`DocumentStore`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Hex SHA-256 of the content: its address.
    pub sha256: String,
    pub size: u64,
    /// False when the store already held this content (written once).
    pub written: bool,
}

/// Why storing or reading a document failed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentStoreError {
    /// The source stream failed (the provider's answer was cut off); the
    /// provider's own error inside (a `providers::CallError`).
    #[error("{0}")]
    Source(SourceError),
    /// The body ended before the `Content-Length` the provider announced.
    #[error("the provider's answer ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    /// The storage backend failed.
    #[error("document storage failed: {0}")]
    Backend(String),
    /// No content with this address.
    #[error("the document store has no content {0}")]
    Missing(String),
}

/// Why a source stream failed. Boxed, so that this vocabulary stands below
/// the providers whose errors it carries.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A body to store: chunks, or a failure of the source.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, SourceError>>;
/// Bytes read back from a store.
pub type ReadStream = BoxStream<'static, Result<Bytes, DocumentStoreError>>;

/// Where documents' bytes live, addressed by SHA-256. Implementations stream
/// in both directions: memory stays a small multiple of a chunk whatever the
/// document's size.
pub trait DocumentStore: Send + Sync + 'static {
    /// Streams `body` in, hashing as it goes; content already present is not
    /// written again. `expected` is the announced length, checked at the end.
    fn put<'a>(
        &'a self,
        body: ByteStream<'a>,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Stored, DocumentStoreError>>;

    /// Streams the content with address `sha256` out.
    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<ReadStream, DocumentStoreError>>;

    /// For logs and `check-config`: `postgres`, `s3://bucket/prefix`, ...
    fn describe(&self) -> String;
}

/// SHA-256 and byte count of a stream, as it passes.
#[derive(Default)]
pub struct Digesting {
    hasher: Sha256,
    size: u64,
}

impl Digesting {
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hex digest and size; errs when `expected` was announced and not met.
    pub fn finish(self, expected: Option<u64>) -> Result<(String, u64), DocumentStoreError> {
        if let Some(expected) = expected.filter(|expected| *expected != self.size) {
            return Err(DocumentStoreError::Truncated {
                got: self.size,
                expected,
            });
        }
        Ok((hex::encode(self.hasher.finalize()), self.size))
    }
}

/// A file name safe in `Content-Disposition` and on any file system: ASCII
/// letters, digits, `.`, `-` and `_` only, never empty, at most 100 bytes.
pub fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    match cleaned.is_empty() {
        true => "document".to_owned(),
        false => cleaned.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_table() {
        for (kind, ok) in [
            ("signed", true),
            ("audit_trail", true),
            ("signed_2", true),
            ("signed_17", true),
            ("signed_1", false),
            ("signed_0", false),
            ("signed_x", false),
            ("original", false),
            ("", false),
            ("../etc", false),
        ] {
            assert_eq!(is_kind(kind), ok, "{kind}");
        }
        assert_eq!(signed_kind(0), "signed");
        assert_eq!(signed_kind(1), "signed_2");
        assert!(is_kind(&signed_kind(5)));
    }

    #[test]
    fn store_locations_table() {
        let ok = [
            ("postgres", "postgres"),
            ("", "postgres"),
            ("s3://bucket/prefix", "s3://bucket/prefix"),
            ("gs://bucket", "gs://bucket"),
            (
                "file:///var/lib/signhook/documents",
                "file:///var/lib/signhook/documents",
            ),
        ];
        for (raw, shown) in ok {
            let location: StoreLocation = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(location.to_string(), shown);
        }
        for bad in [
            "s3://",
            "file:///",
            "ftp://host/x",
            "bucket/prefix",
            "http://minio:9000/bucket",
        ] {
            assert!(bad.parse::<StoreLocation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_are_made_safe() {
        for (name, safe) in [
            ("NDA (signed).pdf", "NDA__signed_.pdf"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("\"quoted\"\r\nX-Evil: 1", "_quoted___X-Evil__1"),
            ("", "document"),
            ("...", "document"),
            ("Vertrag-Ä.pdf", "Vertrag-_.pdf"),
        ] {
            assert_eq!(safe_file_name(name), safe, "{name}");
        }
        assert_eq!(safe_file_name(&"a".repeat(300)).len(), 100);
    }

    #[test]
    fn a_short_body_is_truncated() {
        let mut digest = Digesting::default();
        digest.update(b"%PDF-1.7");
        assert!(matches!(
            Digesting::default().finish(Some(3)),
            Err(DocumentStoreError::Truncated { got: 0, expected: 3 })
        ));
        let (sha, size) = digest.finish(Some(8)).expect("complete");
        assert_eq!(size, 8);
        assert_eq!(sha.len(), 64);
    }
}
