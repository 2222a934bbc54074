//! `/api/agreements/{provider}/{agreement_id}/documents…`: the copies kept
//! of a completed agreement (signed PDF, audit trail), streamed from the
//! document store, and queuing them to be fetched again. Behind the admin
//! token like the rest of `/api`.

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::{error::ApiError, error::ErrorBody, AppState};
use crate::{
    agreement::AgreementStatus,
    documents::{self, safe_file_name},
    fetcher::FetchReport,
    store::{DocumentJobView, DocumentView},
};

/// Longest a refresh waits for a fetch it started; the fetch goes on after.
pub const REFRESH_FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements/{provider}/{agreement_id}/documents", get(list))
        .route("/agreements/{provider}/{agreement_id}/documents/refetch", post(refetch))
        .route("/agreements/{provider}/{agreement_id}/documents/{kind}", get(download))
}

/// What `GET …/documents` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentsView {
    pub documents: Vec<DocumentView>,
    /// The fetch job, once the agreement has completed.
    pub job: Option<DocumentJobView>,
}

/// `GET /api/agreements/{provider}/{agreement_id}/documents`
#[utoipa::path(get, path = "/api/agreements/{provider}/{agreement_id}/documents", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign"), ("agreement_id" = String, Path)),
    responses((status = 200, description = "the documents kept and the fetch job", body = DocumentsView),
        (status = 404, description = "never seen", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn list(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DocumentsView>, ApiError> {
    let Path((name, agreement_id)) = path?;
    let provider = state.provider(&name)?.name();
    known(&state, provider, &agreement_id).await?;
    let documents = state.store.documents().list(provider, &agreement_id).await?;
    let job = state.store.documents().job(provider, &agreement_id).await?;
    Ok(Json(DocumentsView { documents, job }))
}

/// `GET /api/agreements/{provider}/{agreement_id}/documents/{kind}`: the
/// bytes, streamed, with `Content-Type`, `Content-Length`, `ETag` (the
/// SHA-256, quoted) and `Content-Disposition: attachment` with a safe file
/// name; `If-None-Match` with that ETag answers 304.
#[utoipa::path(get, path = "/api/agreements/{provider}/{agreement_id}/documents/{kind}", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign"), ("agreement_id" = String, Path),
        ("kind" = String, Path, description = "signed, audit_trail, or signed_2… (a FuseSign bundle's further documents)")),
    responses((status = 200, description = "the document's bytes", content_type = "application/pdf"),
        (status = 304, description = "If-None-Match names this content"),
        (status = 400, description = "not a document kind", body = ErrorBody),
        (status = 404, description = "no such agreement, or this document is not stored (yet)", body = ErrorBody),
        (status = 503, description = "the document store cannot be read", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn download(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((name, agreement_id, kind)) = path?;
    let provider = state.provider(&name)?.name();
    if !documents::is_kind(&kind) {
        return Err(ApiError::BadRequest {
            code: "invalid_document_kind",
            message: format!("`{kind}` is not a document kind: signed, audit_trail, or signed_2, signed_3…"),
        });
    }
    let Some(document) = state.store.documents().get(provider, &agreement_id, &kind).await? else {
        known(&state, provider, &agreement_id).await?;
        return Err(ApiError::NotFound(format!(
            "no {kind} document is stored for {provider} agreement `{agreement_id}` (yet); GET …/documents shows the fetch job"
        )));
    };
    let etag = format!("\"{}\"", document.sha256);
    let etag_value = HeaderValue::from_str(&etag).expect("a quoted hex digest is a valid header value");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let stream = state
        .fetcher
        .documents()
        .get(&document.sha256)
        .await
        .map_err(|error| ApiError::Unavailable {
            code: "document_store_unavailable",
            message: format!("the document store cannot be read: {error}"),
        })?;
    let body = Body::from_stream(stream.map_err(|error| {
        tracing::error!(%error, "document stream failed part way; the response is cut off");
        std::io::Error::other(error.to_string())
    }));
    let content_type = HeaderValue::from_str(&document.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = format!("attachment; filename=\"{}\"", safe_file_name(&document.file_name));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(document.size));
    headers.insert(header::ETAG, etag_value);
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("a sanitized file name is a valid header value"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// `POST /api/agreements/{provider}/{agreement_id}/documents/refetch`: 202,
/// every document of the completed agreement fetched again in the
/// background (a dead job too); the copies kept stay until replaced.
#[utoipa::path(post, path = "/api/agreements/{provider}/{agreement_id}/documents/refetch", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign"), ("agreement_id" = String, Path)),
    responses((status = 202, description = "queued", body = DocumentsView),
        (status = 404, description = "never seen", body = ErrorBody),
        (status = 409, description = "the agreement is not completed", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn refetch(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((name, agreement_id)) = path?;
    let provider = state.provider(&name)?.name();
    let status = known(&state, provider, &agreement_id).await?;
    if status != Some(AgreementStatus::Completed) {
        return Err(not_completed(provider, &agreement_id, status));
    }
    state.store.documents().refetch(provider, &agreement_id).await?;
    state.fetcher.wake();
    let documents = state.store.documents().list(provider, &agreement_id).await?;
    let job = state.store.documents().job(provider, &agreement_id).await?;
    Ok((StatusCode::ACCEPTED, Json(DocumentsView { documents, job })).into_response())
}

fn not_completed(provider: &str, agreement_id: &str, status: Option<AgreementStatus>) -> ApiError {
    ApiError::Conflict {
        code: "agreement_not_completed",
        message: format!(
            "{provider} agreement `{agreement_id}` is {}: only a completed agreement has documents to keep",
            status.map_or("without a status", AgreementStatus::as_str)
        ),
    }
}

/// The agreement's status; 404 when it was never seen.
async fn known(state: &AppState, provider: &str, agreement_id: &str) -> Result<Option<AgreementStatus>, ApiError> {
    let agreement = state
        .store
        .agreements()
        .get(provider, agreement_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no {provider} agreement `{agreement_id}` has been seen")))?;
    Ok(agreement.status.as_deref().and_then(AgreementStatus::parse))
}

/// For `POST …/refresh` of a completed agreement: fetches its documents now
/// when its signed copy is missing, or all of them again with `refetch`,
/// waiting up to [`REFRESH_FETCH_DEADLINE`]; `None` when nothing was to do.
pub async fn fetch_on_refresh(
    state: &AppState,
    provider: &str,
    agreement_id: &str,
    refetch: bool,
) -> Result<Option<FetchReport>, ApiError> {
    let kept = state
        .store
        .documents()
        .get(provider, agreement_id, documents::SIGNED)
        .await?;
    if kept.is_some() && !refetch {
        return Ok(None);
    }
    let lease = state.fetcher.lease();
    let Some(job) = state
        .store
        .documents()
        .claim(provider, agreement_id, refetch, lease)
        .await?
    else {
        return Ok(Some(in_progress("another fetch of these documents is under way")));
    };
    let fetcher = state.fetcher.clone();
    let running = tokio::spawn(async move { fetcher.run_job(&job).await });
    match tokio::time::timeout(REFRESH_FETCH_DEADLINE, running).await {
        Ok(Ok(report)) => Ok(Some(report)),
        Ok(Err(_)) => Err(ApiError::Internal),
        Err(_) => Ok(Some(in_progress(&format!(
            "still fetching after {} s; it goes on in the background (GET …/documents shows it)",
            REFRESH_FETCH_DEADLINE.as_secs()
        )))),
    }
}

fn in_progress(message: &str) -> FetchReport {
    FetchReport {
        fetched: Vec::new(),
        kept: Vec::new(),
        outcome: "in_progress",
        error: Some(message.to_owned()),
        retry_after_secs: None,
    }
}
