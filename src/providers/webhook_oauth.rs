//! signhook as the OAuth 2.0 authorization server of a provider's webhook
//! deliveries: Adobe Sign's *Webhooks OAuth 2.0* (developer guide,
//! `acrobat_sign_events/webhooks-oauth-2-0` and `developer_guide/webhook-endpoint-api`).
//! The account's `webhookEndpoint` names an `authorizationServerUrl`, a
//! `clientId`, a `clientSecret` and an optional `scope`; before notifying,
//! Adobe obtains an `access_token` there (the guide lists the standard token
//! answer: `access_token`, `token_type` `Bearer`, `expires_in` in seconds)
//! and sends it in the notification's `Authorization` header.
//!
//! The guide does not say how the client authenticates at the token URL, so
//! both ways RFC 6749 §2.3.1 defines are accepted (HTTP Basic, or
//! `client_id`/`client_secret` in the form body), for the client-credentials
//! grant (§4.4). Tokens are HS256 JWTs (the `jsonwebtoken` crate) signed with
//! a configured key, naming the provider as their audience, and short-lived;
//! any replica with the same key verifies them, and nothing is stored.

use std::time::Duration;

use axum::http::{
    header::{AUTHORIZATION, CONTENT_TYPE},
    HeaderMap,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::ProviderError;
use crate::config::{invalid, mask, ConfigError, HumanDuration};

/// The `iss` of every token signhook issues.
const ISSUER: &str = "signhook";
/// Shortest accepted client secret and signing key: long enough that
/// guessing is hopeless, so the token endpoint needs no lockout.
const MIN_SECRET_CHARS: usize = 32;
/// The longest token lifetime accepted.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The settings of one provider's webhook OAuth, by their keys.
pub struct WebhookOAuthSettings<'a> {
    /// `(key, value)` of the list of `client_id:client_secret` pairs.
    pub clients: (&'a str, &'a [String]),
    /// `(key, value)` of the list of signing keys; the first signs.
    pub signing_keys: (&'a str, &'a [String]),
    /// `(key, value)` of the token lifetime.
    pub token_ttl: (&'a str, HumanDuration),
}

/// Issues and verifies the bearer tokens of one provider's webhooks. Not
/// `Debug`: it holds secrets.
pub struct WebhookTokens {
    /// The provider's name: the tokens' audience.
    audience: &'static str,
    clients: Vec<(String, String)>,
    /// The first signs new tokens; every one verifies (key rotation).
    keys: Vec<(EncodingKey, DecodingKey)>,
    ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// A token request refused, as RFC 6749 §5.2 names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_client`: unknown client or wrong secret (not saying which).
    #[error("client authentication failed")]
    InvalidClient,
    /// `unsupported_grant_type`: only `client_credentials` is issued.
    #[error("only the client_credentials grant is supported")]
    UnsupportedGrantType,
}

impl TokenError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

/// A token issued: the RFC 6749 §5.1 answer (the fields Adobe's guide lists).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the token is valid for.
    pub expires_in: u64,
    /// The scope asked for, if any (any scope is granted: the token only
    /// lets the provider deliver webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A token request's parameters and how the client authenticated.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    /// From the form body (`client_secret_post`).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// From `Authorization: Basic` (`client_secret_basic`).
    pub basic: Option<(String, String)>,
}

impl TokenRequest {
    /// Reads a form-encoded body (RFC 6749 §4.4.2; a JSON object of strings
    /// too, since Adobe's guide does not show the request) and the
    /// `Authorization` header. A parameter sent twice is refused (§3.2), as is
    /// a client authenticating both ways at once (§2.3).
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, TokenError> {
        let mut request = Self::default();
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
        let pairs: Vec<(String, String)> = match json {
            true => serde_json::from_slice::<serde_json::Map<String, Value>>(body)
                .map_err(|e| TokenError::InvalidRequest(format!("the body is not a JSON object: {e}")))?
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.as_str()?.to_owned())))
                .collect(),
            false => form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        };
        for (name, value) in pairs {
            let slot = match name.as_ref() {
                "grant_type" => &mut request.grant_type,
                "scope" => &mut request.scope,
                "client_id" => &mut request.client_id,
                "client_secret" => &mut request.client_secret,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(TokenError::InvalidRequest(format!("`{name}` is given more than once")));
            }
        }
        if let Some(value) = headers.get(AUTHORIZATION) {
            request.basic = Some(basic_credentials(value.as_bytes())?);
            if request.client_id.is_some() || request.client_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "the client authenticates with HTTP Basic and with form parameters; use one".to_owned(),
                ));
            }
        }
        Ok(request)
    }

    /// The client's id and secret, however it sent them.
    fn credentials(&self) -> Result<(&str, &str), TokenError> {
        match (&self.basic, self.client_id.as_deref(), self.client_secret.as_deref()) {
            (Some((id, secret)), _, _) => Ok((id, secret)),
            (None, Some(id), Some(secret)) => Ok((id, secret)),
            _ => Err(TokenError::InvalidClient),
        }
    }
}

/// `Basic base64(client_id ":" client_secret)`. Configured ids and secrets
/// are URL-unreserved characters, which RFC 6749's form-encoding of them
/// leaves unchanged, so no decoding step is needed.
fn basic_credentials(value: &[u8]) -> Result<(String, String), TokenError> {
    let malformed = || TokenError::InvalidRequest("the Authorization header is not `Basic <base64(id:secret)>`".into());
    let value = std::str::from_utf8(value).map_err(|_| malformed())?.trim();
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((id.to_owned(), secret.to_owned()))
}

/// Characters a client id or secret may have: RFC 3986's unreserved ones.
fn unreserved(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl WebhookTokens {
    /// The provider's webhook OAuth from its settings; `None` when no client
    /// is configured (webhooks are then authenticated without a token). Any
    /// client needs a signing key, and every value is checked.
    pub fn from_settings(
        audience: &'static str,
        settings: WebhookOAuthSettings<'_>,
    ) -> Result<Option<Self>, ConfigError> {
        let (clients_key, clients) = settings.clients;
        let (keys_key, keys) = settings.signing_keys;
        let (ttl_key, ttl) = settings.token_ttl;
        if clients.is_empty() {
            return Ok(None);
        }
        let clients = clients
            .iter()
            .map(|pair| {
                let (id, secret) = pair
                    .split_once(':')
                    .filter(|(id, secret)| unreserved(id) && unreserved(secret))
                    .ok_or_else(|| {
                        invalid(
                            clients_key,
                            "each entry is client_id:client_secret, both of letters, digits and -._~",
                        )
                    })?;
                if secret.len() < MIN_SECRET_CHARS {
                    return Err(invalid(
                        clients_key,
                        format!("the secret of client `{id}` must be at least {MIN_SECRET_CHARS} characters"),
                    ));
                }
                Ok((id.to_owned(), secret.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(invalid(
                keys_key,
                format!("is required with {}", crate::config::setting_name(clients_key)),
            ));
        }
        if keys.iter().any(|key| key.len() < MIN_SECRET_CHARS) {
            return Err(invalid(
                keys_key,
                format!("each signing key must be at least {MIN_SECRET_CHARS} characters"),
            ));
        }
        let ttl = ttl.get();
        if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
            return Err(invalid(ttl_key, "must be between 1s and 24h"));
        }
        Ok(Some(Self {
            audience,
            clients,
            keys: keys
                .iter()
                .map(|key| {
                    (
                        EncodingKey::from_secret(key.as_bytes()),
                        DecodingKey::from_secret(key.as_bytes()),
                    )
                })
                .collect(),
            ttl,
        }))
    }

    /// Checks the client's secret (in constant time, against every client)
    /// and issues a token.
    pub fn issue(&self, request: &TokenRequest, now: DateTime<Utc>) -> Result<TokenAnswer, TokenError> {
        let (client_id, secret) = request.credentials()?;
        let matched = self.clients.iter().fold(subtle::Choice::from(0), |found, (id, known)| {
            found | (id.as_bytes().ct_eq(client_id.as_bytes()) & known.as_bytes().ct_eq(secret.as_bytes()))
        });
        if !bool::from(matched) {
            return Err(TokenError::InvalidClient);
        }
        match request.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(_) => return Err(TokenError::UnsupportedGrantType),
            None => return Err(TokenError::InvalidRequest("`grant_type` is required".to_owned())),
        }
        let ttl = self.ttl.as_secs();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: self.audience.to_owned(),
            sub: client_id.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            scope: request.scope.clone(),
        };
        let (signing, _) = self.keys.first().expect("a signing key is required with a client");
        let access_token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, signing)
            .expect("HS256 signing of plain claims does not fail");
        Ok(TokenAnswer {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            scope: request.scope.clone(),
        })
    }

    /// Checks the request's `Authorization: Bearer` token: signed by one of
    /// the keys, for this provider, not expired (no leeway: signhook both
    /// issues and checks, on one clock). `now` is the verifier's clock.
    pub fn verify(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), ProviderError> {
        let invalid = |code: &'static str, message: String| ProviderError::InvalidCredential { code, message };
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => {
                return Err(ProviderError::MissingCredential {
                    code: "missing_bearer_token",
                    message: format!(
                        "webhook OAuth is configured: the notification must carry `Authorization: Bearer <token>` \
                         from POST /webhooks/{}/oauth/token",
                        self.audience
                    ),
                })
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "invalid_bearer_token",
                    "the Authorization header appears more than once".to_owned(),
                ))
            }
            (Some(value), None) => value,
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                invalid(
                    "invalid_bearer_token",
                    "the Authorization header is not `Bearer <token>`".to_owned(),
                )
            })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[self.audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        // Expiry is checked below against `now`, not the library's clock.
        validation.validate_exp = false;
        let mut error = None;
        for (_, key) in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) if data.claims.exp > now.timestamp() => return Ok(()),
                Ok(_) => {
                    return Err(invalid(
                        "expired_bearer_token",
                        format!(
                            "the bearer token has expired; the provider fetches a new one from \
                             POST /webhooks/{}/oauth/token",
                            self.audience
                        ),
                    ))
                }
                Err(e) => error = Some(e),
            }
        }
        let reason = match error.as_ref().map(|e| e.kind()) {
            Some(ErrorKind::InvalidAudience) => "it was issued for another provider",
            Some(ErrorKind::InvalidSignature) => "its signature does not verify with any configured key",
            _ => "it is not a token this service issued",
        };
        Err(invalid(
            "invalid_bearer_token",
            format!("the bearer token is refused: {reason}"),
        ))
    }

    /// For `check-config`: the clients (ids only) and the lifetime.
    pub fn describe(tokens: Option<&Self>) -> Value {
        match tokens {
            None => json!({ "configured": false }),
            Some(tokens) => json!({
                "configured": true,
                "client_ids": tokens.clients.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                "client_secrets": tokens.clients.iter().map(|(_, secret)| mask(secret)).collect::<Vec<_>>(),
                "signing_keys": tokens.keys.len(),
                "token_ttl_secs": tokens.ttl.as_secs(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, time};

    const SECRET: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";
    const KEY: &str = "signing-key-signing-key-signing-key";

    fn tokens(keys: &[&str], ttl_secs: u64) -> WebhookTokens {
        let clients = vec![format!("adobe:{SECRET}")];
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        WebhookTokens::from_settings(
            "adobe-sign",
            WebhookOAuthSettings {
                clients: ("x_clients", &clients),
                signing_keys: ("x_keys", &keys),
                token_ttl: ("x_ttl", HumanDuration::from_secs(ttl_secs)),
            },
        )
        .expect("valid settings")
        .expect("configured")
    }

    fn form(body: &str) -> TokenRequest {
        TokenRequest::parse(&HeaderMap::new(), body.as_bytes()).expect("parses")
    }

    fn bearer(token: &str) -> HeaderMap {
        headers(&[("authorization", &format!("Bearer {token}"))])
    }

    fn issued(tokens: &WebhookTokens, now: DateTime<Utc>) -> String {
        let answer = tokens
            .issue(
                &form(&format!(
                    "grant_type=client_credentials&client_id=adobe&client_secret={SECRET}"
                )),
                now,
            )
            .expect("issued");
        assert_eq!(answer.token_type, "Bearer");
        answer.access_token
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let tokens = tokens(&[KEY], 600);
        let now = time("2026-12-02T10:00:00Z");
        let token = issued(&tokens, now);
        assert!(tokens.verify(&bearer(&token), now).is_ok());
        assert!(tokens
            .verify(&bearer(&token), now + chrono::Duration::seconds(599))
            .is_ok());
        let code = |result: Result<(), ProviderError>| match result {
            Err(ProviderError::InvalidCredential { code, .. } | ProviderError::MissingCredential { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(tokens.verify(&bearer(&token), now + chrono::Duration::seconds(600))),
            "expired_bearer_token"
        );
        assert_eq!(code(tokens.verify(&HeaderMap::new(), now)), "missing_bearer_token");
        assert_eq!(
            code(tokens.verify(&headers(&[("authorization", &format!("Basic {token}"))]), now)),
            "invalid_bearer_token"
        );
        // Signed with another key, or for another provider.
        let other = self::tokens(&["another-key-another-key-another-key"], 600);
        assert_eq!(
            code(tokens.verify(&bearer(&issued(&other, now)), now)),
            "invalid_bearer_token"
        );
        let mut elsewhere = self::tokens(&[KEY], 600);
        elsewhere.audience = "fusesign";
        assert_eq!(
            code(tokens.verify(&bearer(&issued(&elsewhere, now)), now)),
            "invalid_bearer_token"
        );
        // A tampered token.
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(code(tokens.verify(&bearer(&tampered), now)), "invalid_bearer_token");
    }

    #[test]
    fn a_rotated_key_still_verifies_the_tokens_it_signed() {
        let now = time("2026-12-02T10:00:00Z");
        let old = issued(&tokens(&["old-key-old-key-old-key-old-key-old"], 600), now);
        let rotated = tokens(&[KEY, "old-key-old-key-old-key-old-key-old"], 600);
        assert!(rotated.verify(&bearer(&old), now).is_ok());
    }

    #[test]
    fn clients_authenticate_with_basic_or_the_form() {
        let tokens = tokens(&[KEY], 60);
        let now = Utc::now();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("adobe:{SECRET}"));
        let request = TokenRequest::parse(
            &headers(&[("authorization", &format!("Basic {basic}"))]),
            b"grant_type=client_credentials&scope=webhooks",
        )
        .expect("parses");
        let answer = tokens.issue(&request, now).expect("issued");
        assert_eq!(answer.expires_in, 60);
        assert_eq!(answer.scope.as_deref(), Some("webhooks"));
        let json = TokenRequest::parse(
            &headers(&[("content-type", "application/json")]),
            format!(r#"{{"grant_type":"client_credentials","client_id":"adobe","client_secret":"{SECRET}"}}"#)
                .as_bytes(),
        )
        .expect("parses");
        assert!(tokens.issue(&json, now).is_ok());

        let code = |body: &str| tokens.issue(&form(body), now).expect_err(body).code();
        assert_eq!(
            code("grant_type=client_credentials&client_id=adobe&client_secret=wrong"),
            "invalid_client"
        );
        assert_eq!(
            code(&format!(
                "grant_type=client_credentials&client_id=other&client_secret={SECRET}"
            )),
            "invalid_client"
        );
        assert_eq!(code("grant_type=client_credentials"), "invalid_client");
        assert_eq!(
            code(&format!("grant_type=password&client_id=adobe&client_secret={SECRET}")),
            "unsupported_grant_type"
        );
        assert_eq!(
            code(&format!("client_id=adobe&client_secret={SECRET}")),
            "invalid_request"
        );
        let twice = TokenRequest::parse(&HeaderMap::new(), b"grant_type=a&grant_type=b").expect_err("twice");
        assert_eq!(twice.code(), "invalid_request");
        let both = TokenRequest::parse(
            &headers(&[("authorization", &format!("Basic {basic}"))]),
            b"client_id=adobe",
        )
        .expect_err("both ways");
        assert_eq!(both.code(), "invalid_request");
    }

    #[test]
    fn the_description_shows_no_secret() {
        let described = WebhookTokens::describe(Some(&tokens(&[KEY], 60))).to_string();
        assert!(!described.contains(SECRET) && !described.contains(KEY), "{described}");
        assert!(described.contains("\"adobe\""), "{described}");
    }

    #[test]
    fn settings_are_checked() {
        let check = |clients: &[&str], keys: &[&str], ttl: u64| {
            let clients: Vec<String> = clients.iter().map(|c| c.to_string()).collect();
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            WebhookTokens::from_settings(
                "adobe-sign",
                WebhookOAuthSettings {
                    clients: ("adobe_sign_webhook_oauth_clients", &clients),
                    signing_keys: ("adobe_sign_webhook_oauth_signing_keys", &keys),
                    token_ttl: ("adobe_sign_webhook_oauth_token_ttl", HumanDuration::from_secs(ttl)),
                },
            )
            .map(|tokens| tokens.is_some())
            .map_err(|e| e.to_string())
        };
        let good = format!("adobe:{SECRET}");
        assert_eq!(check(&[], &[], 900), Ok(false));
        assert_eq!(check(&[&good], &[KEY], 900), Ok(true));
        let cases = [
            (
                vec!["no-secret"],
                vec![KEY],
                900,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS",
            ),
            (
                vec!["adobe:short"],
                vec![KEY],
                900,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS",
            ),
            (
                vec!["ad obe:s3cret-s3cret-s3cret-s3cret-s3cret"],
                vec![KEY],
                900,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS",
            ),
            (
                vec![good.as_str()],
                vec![],
                900,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_SIGNING_KEYS",
            ),
            (
                vec![good.as_str()],
                vec!["short"],
                900,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_SIGNING_KEYS",
            ),
            (
                vec![good.as_str()],
                vec![KEY],
                0,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_TOKEN_TTL",
            ),
            (
                vec![good.as_str()],
                vec![KEY],
                90_000,
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_TOKEN_TTL",
            ),
        ];
        for (clients, keys, ttl, setting) in cases {
            let error = check(&clients, &keys, ttl).expect_err("invalid");
            assert!(error.starts_with(setting), "{clients:?} {keys:?} {ttl}: {error}");
        }
    }
}
