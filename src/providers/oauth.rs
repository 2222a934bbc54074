//! OAuth 2 refresh-token sessions for providers' APIs: an access token kept
//! in memory, renewed shortly before it expires (and once when refused), one
//! refresh at a time however many calls need it. A refresh token the
//! provider rotates (FuseSign's refresh answer carries a new one) is kept in
//! PostgreSQL through the ledger, so a restart, or another replica, uses the
//! newest one; it is never logged.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{header::ACCEPT, Url};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{
    client::{read_json, transport_error, ApiClient, CallError},
    payload::parse_time,
    settings::base_url,
};
use crate::ledger::ApiLedger;

/// How long before its stated expiry an access token is replaced (at most).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Assumed lifetime of an access token whose answer does not state one.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// An OAuth 2 refresh-token grant: the access token is cached in memory and
/// replaced shortly before it expires (see `renew_after`). The lock is held
/// while refreshing, so concurrent polls share one refresh.
pub struct OAuthSession {
    token_url: Url,
    client_id: String,
    client_secret: String,
    /// The refresh token as configured: where the grant's chain starts.
    configured: String,
    state: Mutex<SessionState>,
}

struct SessionState {
    /// The configured refresh token, or the newer one a refresh answer gave
    /// (also kept in the ledger, when there is one).
    refresh_token: String,
    /// Whether the ledger's newest refresh token has been read.
    loaded: bool,
    access: Option<AccessToken>,
    /// `api_access_point` of the last token answer (Adobe's OAuth answers
    /// name the account's API base).
    api_access_point: Option<Url>,
}

struct AccessToken {
    value: String,
    renew_at: Instant,
}

impl OAuthSession {
    /// A session that POSTs `grant_type=refresh_token` with the client
    /// credentials to `token_url`.
    pub fn new(token_url: Url, client_id: &str, client_secret: &str, refresh_token: &str) -> Self {
        Self {
            token_url,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            configured: refresh_token.to_owned(),
            state: Mutex::new(SessionState {
                refresh_token: refresh_token.to_owned(),
                loaded: false,
                access: None,
                api_access_point: None,
            }),
        }
    }

    /// A valid access token: the cached one, or a new one from the token
    /// endpoint. With a ledger, the grant's newest refresh token is read from
    /// it first, and a rotated one written to it; a refresh token refused
    /// because another replica rotated it meanwhile is read again once.
    pub(super) async fn access_token(
        &self,
        client: &ApiClient,
        ledger: Option<&Arc<dyn ApiLedger>>,
    ) -> Result<String, CallError> {
        let mut state = self.state.lock().await;
        if let Some(access) = state.access.as_ref().filter(|a| Instant::now() < a.renew_at) {
            return Ok(access.value.clone());
        }
        if let (Some(ledger), false) = (ledger, state.loaded) {
            if let Some(newest) = self.newest(ledger, client).await? {
                state.refresh_token = newest;
            }
            state.loaded = true;
        }
        let used = state.refresh_token.clone();
        let body = match (self.refresh(client, &used).await, ledger) {
            // Another replica may have rotated the token we hold.
            (Err(error @ CallError::Status { status: 400 | 401, .. }), Some(ledger)) => {
                match self.newest(ledger, client).await? {
                    Some(newest) if newest != used => {
                        state.refresh_token = newest.clone();
                        self.refresh(client, &newest).await?
                    }
                    _ => return Err(error),
                }
            }
            (other, _) => other?,
        };
        let token = TokenAnswer::parse(&body.0, Utc::now())?;
        tracing::debug!(
            provider = client.provider,
            lifetime_secs = token.lifetime.as_secs(),
            "access token refreshed"
        );
        if let Some(rotated) = token.refresh_token.filter(|rotated| *rotated != state.refresh_token) {
            if let Some(ledger) = ledger {
                match ledger
                    .rotate_refresh_token(client.provider, &self.configured, &rotated)
                    .await
                {
                    Ok(()) => tracing::info!(
                        provider = client.provider,
                        "the provider rotated the OAuth refresh token; the new one is kept in the database"
                    ),
                    Err(error) => tracing::warn!(provider = client.provider, %error,
                        "the provider rotated the OAuth refresh token and it could not be kept in the database; a restart falls back to the configured one"),
                }
            }
            state.refresh_token = rotated;
        }
        if let Some(point) = token.api_access_point {
            state.api_access_point = base_url("adobe_sign_api_base", &point).ok();
        }
        state.access = Some(AccessToken {
            value: token.access_token.clone(),
            renew_at: body.1 + renew_after(token.lifetime),
        });
        Ok(token.access_token)
    }

    /// The API base the last token answer named, if any.
    pub(super) async fn api_access_point(&self) -> Option<Url> {
        self.state.lock().await.api_access_point.clone()
    }

    async fn newest(&self, ledger: &Arc<dyn ApiLedger>, client: &ApiClient) -> Result<Option<String>, CallError> {
        ledger
            .refresh_token(client.provider, &self.configured)
            .await
            .map_err(|error| CallError::Ledger(error.to_string()))
    }

    /// One refresh-token grant: the answer and when it was asked for.
    async fn refresh(&self, client: &ApiClient, refresh_token: &str) -> Result<(Value, Instant), CallError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("refresh_token", refresh_token),
        ];
        let request = client
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            .build()
            .map_err(transport_error)?;
        let requested_at = Instant::now();
        let response = client.send_with_retry(request).await?;
        let body = read_json(response).await.map_err(|error| match error {
            CallError::NotFound => CallError::Status {
                status: 404,
                message: "OAuth token refresh: the token endpoint does not exist (check the API base)".to_owned(),
            },
            CallError::Status { status, message } => CallError::Status {
                status,
                message: format!("OAuth token refresh: {message}"),
            },
            other => other,
        })?;
        Ok((body, requested_at))
    }

    /// Forgets `refused` if it is still the cached token (another poll may
    /// have replaced it already).
    pub(super) async fn invalidate(&self, refused: &str) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|access| access.value == refused) {
            state.access = None;
        }
    }
}

/// What a token endpoint answers.
#[derive(Debug, PartialEq)]
struct TokenAnswer {
    access_token: String,
    lifetime: Duration,
    refresh_token: Option<String>,
    /// Adobe: the account's API base (snake_case in OAuth answers).
    api_access_point: Option<String>,
}

impl TokenAnswer {
    /// `expires_in` is seconds (RFC 6749, Adobe), as a number or a string, or
    /// an expiry time (FuseSign documents a date-time).
    fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, CallError> {
        let text = |field: &str| {
            body.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let access_token = text("access_token")
            .ok_or_else(|| CallError::InvalidResponse("the token answer has no access_token".to_owned()))?;
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64().map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 1e9))),
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => parse_time(&Value::String(s.clone())).map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)),
            },
            _ => None,
        };
        Ok(Self {
            access_token,
            lifetime: lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME),
            refresh_token: text("refresh_token"),
            api_access_point: text("api_access_point"),
        })
    }
}

/// When to replace a token that lives `lifetime`: a minute before it expires,
/// or halfway for short-lived tokens, so that no request leaves with a token
/// that expires on the way.
fn renew_after(lifetime: Duration) -> Duration {
    lifetime - EXPIRY_MARGIN.min(lifetime / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::time;
    use serde_json::json;

    #[test]
    fn tokens_are_renewed_a_minute_early_or_halfway_when_short_lived() {
        let secs = Duration::from_secs;
        assert_eq!(renew_after(secs(3600)), secs(3540));
        assert_eq!(renew_after(secs(120)), secs(60));
        assert_eq!(renew_after(secs(60)), secs(30));
        assert_eq!(renew_after(secs(1)), Duration::from_millis(500));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_answers_state_lifetimes_in_seconds_or_as_an_expiry_time() {
        let now = time("2026-11-20T09:41:27Z");
        let lifetime = |expires_in: Value| {
            TokenAnswer::parse(&json!({"access_token": "a", "expires_in": expires_in}), now)
                .expect("parses")
                .lifetime
        };
        assert_eq!(lifetime(json!(3600)), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("3600")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T10:41:27Z")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T10:41:27.000")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T09:00:00Z")), Duration::ZERO);
        assert_eq!(lifetime(json!(-5)), Duration::ZERO);
        assert_eq!(lifetime(json!(null)), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(lifetime(json!("never")), DEFAULT_TOKEN_LIFETIME);

        let answer = TokenAnswer::parse(&json!({"access_token": " t1 ", "refresh_token": "r2"}), now).expect("parses");
        assert_eq!(
            (answer.access_token.as_str(), answer.refresh_token.as_deref()),
            ("t1", Some("r2"))
        );
        for bad in [
            json!({}),
            json!({"access_token": ""}),
            json!({"access_token": 5}),
            json!([]),
        ] {
            assert!(matches!(
                TokenAnswer::parse(&bad, now),
                Err(CallError::InvalidResponse(_))
            ));
        }
    }
}
