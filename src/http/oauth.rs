//! `POST /oauth/token`: signhook as the OAuth 2.0 authorization server of
//! providers' webhook deliveries (Adobe Sign's Webhooks OAuth 2.0; see
//! `providers::webhook_oauth`). The provider exchanges its client
//! credentials for a short-lived bearer token, which every notification then
//! carries. The route exists only while some provider has clients configured.

use axum::{
    body::Bytes,
    extract::State,
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

/// `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4), the
/// client authenticated by HTTP Basic or by `client_id`/`client_secret` in
/// the form. 200 with a bearer token; refusals in OAuth's error shape.
#[utoipa::path(post, path = "/oauth/token", tag = "webhooks", operation_id = "issue_webhook_token",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials, optionally scope, and client_id + client_secret unless sent as HTTP Basic"),
    responses((status = 200, description = "a bearer token for the provider's notifications", body = TokenAnswer),
        (status = 400, description = "invalid_request or unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: unknown client or wrong secret", body = OAuthErrorBody),
        (status = 404, description = "no provider has webhook OAuth configured", body = ErrorBody),
        (status = 413, description = "the request is larger than 16 KiB")))]
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let issuers: Vec<_> = state.providers.iter().filter_map(|p| p.webhook_tokens()).collect();
    let Some(first) = issuers.first() else {
        return Err(ApiError::NotFound(
            "no provider has webhook OAuth configured (SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS)".to_owned(),
        ));
    };
    let request = TokenRequest::parse(&headers, &body)?;
    // An unknown client fails the secret check like a wrong secret does.
    let issuer = request
        .client_id()
        .and_then(|id| issuers.iter().find(|tokens| tokens.knows(id)))
        .unwrap_or(first);
    let answer = issuer.issue(&request, Utc::now())?;
    let mut response = Json(answer).into_response();
    // RFC 6749 §5.1: token answers are not cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}
