//! The PostgreSQL document store (the default `SIGNHOOK_DOCUMENT_STORE`):
//! content by SHA-256 in `document_blobs`, its bytes in `document_chunks` of
//! at most [`CHUNK`] each. A write is one transaction: the chunks go in as
//! they arrive, the blob row last; when the content is already there the
//! transaction is rolled back, so each content is stored once. Reads fetch
//! one chunk per query, so neither direction holds a whole document.

use bytes::{Bytes, BytesMut};
use futures::{future::BoxFuture, StreamExt};
use sqlx::PgPool;

use crate::documents::{ByteStream, Digesting, DocumentStore, DocumentStoreError, ReadStream, Stored};

/// Bytes per stored chunk: large enough that a 50 MB document is 50 rows,
/// small enough that memory stays a few MiB.
pub const CHUNK: usize = 1024 * 1024;

/// The documents' bytes in PostgreSQL; see [`super::Store::blobs`].
#[derive(Clone)]
pub struct Blobs {
    pub(super) pool: PgPool,
}

fn backend(error: sqlx::Error) -> DocumentStoreError {
    DocumentStoreError::Backend(error.to_string())
}

impl Blobs {
    async fn write(&self, mut body: ByteStream<'_>, expected: Option<u64>) -> Result<Stored, DocumentStoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let blob_id: i64 = sqlx::query_scalar("SELECT nextval('document_blob_ids')")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let mut digest = Digesting::default();
        let mut pending = BytesMut::with_capacity(CHUNK);
        let mut seq = 0i32;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(DocumentStoreError::Source)?;
            digest.update(&chunk);
            while !chunk.is_empty() {
                let take = (CHUNK - pending.len()).min(chunk.len());
                pending.extend_from_slice(&chunk.split_to(take));
                if pending.len() == CHUNK {
                    insert_chunk(&mut tx, blob_id, seq, &pending).await?;
                    pending.clear();
                    seq += 1;
                }
            }
        }
        if !pending.is_empty() || seq == 0 {
            insert_chunk(&mut tx, blob_id, seq, &pending).await?;
            seq += 1;
        }
        let (sha256, size) = digest.finish(expected)?;
        let new: Option<i64> = sqlx::query_scalar(
            "INSERT INTO document_blobs (sha256, blob_id, size, chunks) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sha256) DO NOTHING RETURNING blob_id",
        )
        .bind(&sha256)
        .bind(blob_id)
        .bind(size as i64)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let written = new.is_some();
        match written {
            true => tx.commit().await.map_err(backend)?,
            false => tx.rollback().await.map_err(backend)?,
        }
        Ok(Stored { sha256, size, written })
    }
}

async fn insert_chunk(
    tx: &mut sqlx::PgConnection,
    blob_id: i64,
    seq: i32,
    data: &[u8],
) -> Result<(), DocumentStoreError> {
    sqlx::query("INSERT INTO document_chunks (blob_id, seq, data) VALUES ($1, $2, $3)")
        .bind(blob_id)
        .bind(seq)
        .bind(data)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    Ok(())
}

impl DocumentStore for Blobs {
    fn put<'a>(
        &'a self,
        body: ByteStream<'a>,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Stored, DocumentStoreError>> {
        Box::pin(self.write(body, expected))
    }

    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<ReadStream, DocumentStoreError>> {
        Box::pin(async move {
            let found: Option<(i64, i32)> =
                sqlx::query_as("SELECT blob_id, chunks FROM document_blobs WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
            let (blob_id, chunks) = found.ok_or_else(|| DocumentStoreError::Missing(sha256.to_owned()))?;
            // One connection for the whole read: each connection's buffers
            // grow to a chunk, and reading chunk by chunk over the pool
            // would grow several of them.
            let connection = self.pool.acquire().await.map_err(backend)?;
            let stream = futures::stream::try_unfold((connection, 0i32), move |(mut connection, seq)| async move {
                if seq >= chunks {
                    return Ok(None);
                }
                let data: Vec<u8> =
                    sqlx::query_scalar("SELECT data FROM document_chunks WHERE blob_id = $1 AND seq = $2")
                        .bind(blob_id)
                        .bind(seq)
                        .fetch_one(&mut *connection)
                        .await
                        .map_err(backend)?;
                Ok(Some((Bytes::from(data), (connection, seq + 1))))
            });
            Ok(stream.boxed())
        })
    }

    fn describe(&self) -> String {
        "postgres".to_owned()
    }
}
