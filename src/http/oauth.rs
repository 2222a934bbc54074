//! `POST /webhooks/{provider}/oauth/token`: signhook as the OAuth 2.0
//! authorization server of a provider's webhook deliveries (Adobe Sign's
//! Webhooks OAuth 2.0; see `providers::webhook_oauth`). The provider
//! exchanges its client credentials for a short-lived bearer token, which
//! every notification then carries. Under `/webhooks/`, so the proxies that
//! publish only that prefix (deploy/) publish it too; it answers 404 for a
//! provider without webhook OAuth clients.

use axum::{
    body::Bytes,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use chrono::Utc;

use super::{
    error::{ApiError, ErrorBody, OAuthErrorBody},
    AppState,
};
use crate::providers::webhook_oauth::{TokenAnswer, TokenRequest};

/// Largest token request read; a client-credentials form is a few hundred bytes.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 16 * 1024;

/// `POST /webhooks/{provider}/oauth/token`: the client-credentials grant
/// (RFC 6749 §4.4), the client authenticated by HTTP Basic or by
/// `client_id`/`client_secret` in the form. 200 with a bearer token for the
/// provider's notifications; refusals in OAuth's error shape.
#[utoipa::path(post, path = "/webhooks/{provider}/oauth/token", tag = "webhooks", operation_id = "issue_webhook_token",
    params(("provider" = String, Path, description = "adobe-sign")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials, optionally scope, and client_id + client_secret unless sent as HTTP Basic"),
    responses((status = 200, description = "a bearer token for the provider's notifications", body = TokenAnswer),
        (status = 400, description = "invalid_request or unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: unknown client or wrong secret", body = OAuthErrorBody),
        (status = 404, description = "unknown provider, or no webhook OAuth configured for it", body = ErrorBody),
        (status = 413, description = "the request is larger than 16 KiB"),
        (status = 503, description = "at capacity; retry later", body = ErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = state.provider(&provider?.0)?;
    let Some(tokens) = provider.webhook_tokens() else {
        return Err(ApiError::NotFound(format!(
            "webhook OAuth is not configured for {} (no webhook OAuth clients are set)",
            provider.name()
        )));
    };
    let request = TokenRequest::parse(&headers, &body)?;
    let answer = tokens.issue(&request, Utc::now())?;
    let mut response = Json(answer).into_response();
    // RFC 6749 §5.1: token answers are not cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}
