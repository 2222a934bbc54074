//! The one HTTP error type. Every refusal is `{"error":{"code","message"}}` and
//! every status code is chosen here, next to the reason for it.

use axum::{
    extract::rejection::{PathRejection, QueryRejection},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use std::sync::Mutex;

use crate::{
    providers::{webhook_oauth::TokenError, ProviderError},
    store::StoreError,
};

/// The one error shape: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_signature`, ...
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
}

/// Lines a second about refusals anyone can cause (bad credentials, shed or
/// late requests); beyond them lines are counted and the next one says how
/// many were left out.
const LOG_BURST: u32 = 10;

static REFUSALS_LOG: RateLimitedLog = RateLimitedLog::new(LOG_BURST);

/// A log-line budget per second.
struct RateLimitedLog {
    burst: u32,
    /// (second the budget is for, lines left in it, lines suppressed since the last one logged)
    state: Mutex<(u64, u32, u64)>,
}

impl RateLimitedLog {
    const fn new(burst: u32) -> Self {
        Self {
            burst,
            state: Mutex::new((0, 0, 0)),
        }
    }

    /// `Some(lines suppressed before this one)` when a line may be logged now.
    fn allow(&self) -> Option<u64> {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        self.allow_at(second)
    }

    fn allow_at(&self, second: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (at, left, suppressed) = &mut *state;
        if *at != second {
            (*at, *left) = (second, self.burst);
        }
        if *left == 0 {
            *suppressed += 1;
            return None;
        }
        *left -= 1;
        Some(std::mem::take(suppressed))
    }
}

/// OAuth's own error shape (RFC 6749 §5.2), answered by the token endpoint
/// instead of [`ErrorBody`]: OAuth clients read `error`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client` or `unsupported_grant_type`.
    pub error: &'static str,
    pub error_description: String,
}

/// Seconds a provider (or client) is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no such route, provider, agreement or event; also every admin path
    /// when no admin token is configured (the API does not exist then).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 400: the request is malformed; `code` says how.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no credential, or one that does not verify. Nothing was stored.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: a valid-looking credential that is not allowed here.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 409: the request cannot be served in this configuration (e.g. a
    /// refresh for a provider without API credentials).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 429 + Retry-After: the provider's API may not be called yet (the
    /// account is paused, its budget spent, or the same request went out
    /// within the minimum interval) and there is nothing to answer from.
    #[error("{message}")]
    Throttled { message: String, retry_after_secs: u64 },
    /// 502: the provider's API failed; the message names its answer.
    #[error("{message}")]
    ProviderFailed { code: &'static str, message: String },
    /// 413: body above `SIGNHOOK_MAX_BODY_BYTES`.
    #[error("the request body is larger than {limit} bytes (SIGNHOOK_MAX_BODY_BYTES)")]
    PayloadTooLarge { limit: usize },
    /// 503 + Retry-After: the request could not finish inside the server-side
    /// deadline. Nothing is promised; the provider retries and dedupe absorbs
    /// the copy if the row did commit.
    #[error("the request did not complete within the server deadline; retry later")]
    Timeout,
    /// 503 + Retry-After: more requests or body bytes in flight than this
    /// replica takes; shed at once so the provider retries elsewhere or later.
    #[error("the server is at capacity; retry later")]
    Overloaded,
    /// 503 + Retry-After: a dependency is down (readiness says which).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 503 + Retry-After: the database failed. The details are logged, not sent.
    #[error("storage is unavailable; retry later")]
    Store(#[from] StoreError),
    /// A refused OAuth token request, in OAuth's shape ([`OAuthErrorBody`]):
    /// 401 with `WWW-Authenticate: Basic` for `invalid_client` (RFC 6749
    /// §5.2), 400 otherwise.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// 500: a bug (a caught panic). Details are logged, not sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Every label [`ApiError::outcome`] gives.
    pub const WEBHOOK_OUTCOMES: [&'static str; 5] =
        ["rejected_auth", "invalid", "too_large", "overloaded", "unavailable"];

    /// The `outcome` label of a refused webhook in `signhook_webhook_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } | Self::Forbidden { .. } | Self::Token(TokenError::InvalidClient) => {
                "rejected_auth"
            }
            Self::Token(_) => "invalid",
            Self::BadRequest { .. } | Self::NotFound(_) | Self::MethodNotAllowed(_) | Self::Conflict { .. } => {
                "invalid"
            }
            Self::PayloadTooLarge { .. } => "too_large",
            Self::Overloaded => "overloaded",
            Self::Timeout
            | Self::Store(_)
            | Self::Unavailable { .. }
            | Self::ProviderFailed { .. }
            | Self::Throttled { .. }
            | Self::Internal => "unavailable",
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::ProviderFailed { code, .. } => (StatusCode::BAD_GATEWAY, code),
            Self::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "provider_throttled"),
            Self::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "deadline_exceeded"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::Token(error @ TokenError::InvalidClient) => (StatusCode::UNAUTHORIZED, error.code()),
            Self::Token(error) => (StatusCode::BAD_REQUEST, error.code()),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        match &self {
            Self::Store(error) => tracing::error!(%error, "database error"),
            // `detail`, not `message`: a JSON line has one `message`, the event's.
            // What anyone can cause without credentials, and what a flood of
            // them causes, is logged at most LOG_BURST times a second.
            Self::Timeout | Self::Overloaded | Self::Unauthorized { .. } | Self::Forbidden { .. } => {
                if let Some(suppressed) = REFUSALS_LOG.allow() {
                    tracing::info!(status = status.as_u16(), code, detail = %self, suppressed, "request refused");
                }
            }
            _ => tracing::info!(status = status.as_u16(), code, detail = %self, "request refused"),
        }
        if let Self::Token(error) = &self {
            let body = Json(OAuthErrorBody {
                error: code,
                error_description: error.to_string(),
            });
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if status == StatusCode::UNAUTHORIZED {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="signhook""#),
                );
            }
            return response;
        }
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        });
        let mut response = (status, body).into_response();
        if let Self::Throttled { retry_after_secs, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::MissingCredential { code, message } | ProviderError::InvalidCredential { code, message } => {
                Self::Unauthorized { code, message }
            }
            ProviderError::Forbidden { code, message } => Self::Forbidden { code, message },
            ProviderError::InvalidPayload { code, message } => Self::BadRequest { code, message },
            ProviderError::NoHandshake => Self::MethodNotAllowed(error.to_string()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest {
            code: "invalid_path",
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest {
            code: "invalid_query",
            message: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_limited_per_second_and_say_how_many_were_left_out() {
        let log = RateLimitedLog::new(2);
        assert_eq!(log.allow_at(100), Some(0));
        assert_eq!(log.allow_at(100), Some(0));
        assert_eq!(log.allow_at(100), None);
        assert_eq!(log.allow_at(100), None);
        assert_eq!(
            log.allow_at(101),
            Some(2),
            "the next second's first line counts those left out"
        );
        assert_eq!(log.allow_at(101), Some(0));
        assert_eq!(log.allow_at(101), None);
    }
}
