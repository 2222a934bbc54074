//! Authenticated calls to one provider's API, behind
//! [`Provider::poll`](super::Provider::poll) and
//! [`Provider::watch`](super::Provider::watch): where the API is, its
//! credential (a fixed header or an OAuth session, see `oauth.rs`), and the
//! shared client with its retries (`client.rs`) that sends the calls.
//!
//! Paths, headers and JSON fields of each provider stay in that provider's
//! module; nothing here logs a secret or a response body.

use reqwest::{
    header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE},
    Method, Request, Response, StatusCode, Url,
};
use serde_json::Value;

use super::{
    client::{read_json, ApiClient, CallError},
    oauth::OAuthSession,
    PollError,
};
use crate::config::{invalid, ConfigError};

/// One provider's API: where it is, how to authenticate, and the client that
/// calls it.
pub struct Api {
    client: ApiClient,
    base: Url,
    credential: Credential,
}

impl Api {
    pub fn new(client: ApiClient, base: Url, credential: Credential) -> Self {
        Self {
            client,
            base,
            credential,
        }
    }

    /// For `check-config`: whether polling is configured, and how it authenticates.
    pub fn describe(api: Option<&Api>) -> Value {
        let auth = api.map(|api| match api.credential {
            Credential::Header(..) => "api_key",
            Credential::OAuth(_) => "oauth_refresh_token",
        });
        serde_json::json!({ "configured": api.is_some(), "auth": auth })
    }

    /// `base` followed by `segments`, each percent-encoded, so an agreement id
    /// can never leave its path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }

    /// GETs `url` with the credential and returns its JSON body.
    pub async fn get_json(&self, url: Url) -> Result<Value, CallError> {
        read_json(self.send(Method::GET, url, None).await?).await
    }

    /// POSTs `body` as JSON to `url` and returns the JSON answer.
    pub async fn post_json(&self, url: Url, body: &Value) -> Result<Value, CallError> {
        read_json(self.send(Method::POST, url, Some(body)).await?).await
    }

    /// DELETEs `url`; any 2xx is success, whatever its body.
    pub async fn delete(&self, url: Url) -> Result<(), CallError> {
        let response = self.send(Method::DELETE, url, None).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        read_json(response).await.map(|_| ())
    }

    /// Sends a request with the credential. On a 401 with an OAuth session,
    /// the access token is replaced once and the request sent again (the
    /// token was revoked, or the clocks disagree).
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Response, CallError> {
        let mut request = Request::new(method, url);
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *request.body_mut() = Some(serde_json::to_vec(body).expect("a JSON value serializes").into());
        }
        match &self.credential {
            Credential::Header(name, value) => {
                request.headers_mut().insert(name.clone(), value.clone());
                self.client.send_with_retry(request).await
            }
            Credential::OAuth(session) => {
                let token = session.access_token(&self.client).await?;
                let response = self.client.send_with_retry(with_bearer(&request, &token)?).await?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Ok(response);
                }
                tracing::info!(
                    provider = self.client.provider,
                    "access token refused before its expiry; refreshing it once"
                );
                session.invalidate(&token).await;
                let token = session.access_token(&self.client).await?;
                self.client.send_with_retry(with_bearer(&request, &token)?).await
            }
        }
    }
}

/// The configured API (`T`) to ask about `agreement_id`:
/// [`PollError::NotConfigured`] without one, [`PollError::NotFound`] for a
/// blank id, which is never sent (it would name the collection, not an item).
pub fn for_agreement<'a, T>(api: Option<&'a T>, agreement_id: &str) -> Result<&'a T, PollError> {
    let api = api.ok_or(PollError::NotConfigured)?;
    if agreement_id.trim().is_empty() {
        return Err(PollError::NotFound);
    }
    Ok(api)
}

/// How a provider's API is authenticated.
pub enum Credential {
    /// A fixed secret sent in one header (API key, integration key).
    Header(HeaderName, HeaderValue),
    /// A bearer access token obtained, and renewed before it expires, with an
    /// OAuth refresh token.
    OAuth(OAuthSession),
}

impl Credential {
    /// `name: value`, where `value` comes from the setting `key`. The value is
    /// marked sensitive, so it never shows in debug output.
    pub fn header(name: &'static str, value: &str, key: &str) -> Result<Self, ConfigError> {
        let mut value =
            HeaderValue::from_str(value).map_err(|_| invalid(key, "must be visible ASCII (it is sent in a header)"))?;
        value.set_sensitive(true);
        Ok(Self::Header(HeaderName::from_static(name), value))
    }

    /// An OAuth session renewing its access token at `token_url` with the
    /// grant `[client id, client secret, refresh token]`.
    pub fn oauth(token_url: Url, [client_id, client_secret, refresh_token]: [&str; 3]) -> Self {
        Self::OAuth(OAuthSession::new(token_url, client_id, client_secret, refresh_token))
    }

    /// `Authorization: Bearer <token>`, `token` coming from the setting `key`.
    pub fn bearer(token: &str, key: &str) -> Result<Self, ConfigError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid(key, "must be visible ASCII (it is sent in a header)"))?;
        value.set_sensitive(true);
        Ok(Self::Header(AUTHORIZATION, value))
    }
}

fn with_bearer(request: &Request, token: &str) -> Result<Request, CallError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| CallError::InvalidResponse("the access token is not a valid header value".to_owned()))?;
    value.set_sensitive(true);
    let mut request = request
        .try_clone()
        .expect("API requests have no body or an in-memory one, which clones");
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(request)
}

/// `base` followed by `segments`, each percent-encoded.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("API bases are http(s) URLs, which have a path")
        .pop_if_empty()
        .extend(segments);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::settings::base_url;

    #[test]
    fn endpoints_encode_each_segment() {
        let base = base_url("k", "https://api.na1.adobesign.com/").expect("valid");
        assert_eq!(
            endpoint(&base, &["api", "rest", "v6", "agreements", "a/b?c"]).as_str(),
            "https://api.na1.adobesign.com/api/rest/v6/agreements/a%2Fb%3Fc"
        );
        let prefixed = base_url("k", "http://127.0.0.1:9/prefix").expect("valid");
        assert_eq!(endpoint(&prefixed, &["v1"]).as_str(), "http://127.0.0.1:9/prefix/v1");
    }
}
