//! The HTTP side of the simulator: one connection-pooling client for the whole
//! run, the webhook endpoints, each provider's authentication header, and what
//! an answer counts as.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE},
    Method, Url,
};
use sha2::Sha256;

use super::{payloads::Provider, SimulateError};

/// Deliveries wait this long for an answer: above the providers' own 10 s, so
/// a slow server shows as slow rather than as errors.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const ADOBE_CLIENT_ID: HeaderName = HeaderName::from_static("x-adobesign-clientid");
const BOLDSIGN_SIGNATURE: HeaderName = HeaderName::from_static("x-boldsign-signature");
const FUSE_SIGNATURE: HeaderName = HeaderName::from_static("fuse-signature");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What the simulator authenticates with, per provider; `None` for providers
/// the run does not play.
#[derive(Clone, Default)]
pub struct Credentials {
    pub adobe_client_id: Option<HeaderValue>,
    /// The BoldSign signing secret, already keyed: each signature clones it.
    pub boldsign_key: Option<Hmac<Sha256>>,
    pub fusesign_signature: Option<HeaderValue>,
}

/// A signhook deployment as the providers see it.
pub struct Target {
    client: reqwest::Client,
    base: String,
    endpoints: [Url; 3],
    credentials: Credentials,
}

/// One notification, ready to send and to send again (a duplicate is the
/// same bytes with the same credential, as a provider's retry would be).
#[derive(Clone)]
pub struct Delivery {
    pub provider: Provider,
    body: Bytes,
    credential: HeaderValue,
}

/// What a delivery counts as in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: the server has committed the event.
    Acknowledged,
    /// Any other answer below 500: the provider would give up on the event.
    Rejected { status: u16, detail: String },
    /// 5xx, a timeout or a connection error: the provider would retry.
    Unavailable { status: Option<u16>, detail: String },
}

/// Which kinds of error answer to read the body of: the first of each kind
/// explains the rest, and reading every one would slow a load run down.
#[derive(Debug, Clone, Copy)]
pub struct Explain {
    pub rejection: bool,
    pub unavailable: bool,
}

impl Explain {
    pub const ALL: Explain = Explain {
        rejection: true,
        unavailable: true,
    };
}

impl Target {
    /// `base` is the deployment's URL (`http://host:port`, maybe with a path
    /// prefix); webhooks are under `{base}/webhooks/{provider}`.
    pub fn new(base: &Url, connections: usize, credentials: Credentials) -> Result<Self, SimulateError> {
        let base = base.as_str().trim_end_matches('/').to_owned();
        let endpoints = Provider::ALL.map(|provider| {
            Url::parse(&format!("{base}/webhooks/{}", provider.name())).expect("a valid base URL plus a path is valid")
        });
        let client = build_client(connections)?;
        Ok(Self {
            client,
            base,
            endpoints,
            credentials,
        })
    }

    /// The same target with a client of its own, for use on another runtime
    /// (a client's pooled connections live on the runtime that opened them).
    pub fn with_own_client(&self, connections: usize) -> Result<Self, SimulateError> {
        Ok(Self {
            client: build_client(connections)?,
            base: self.base.clone(),
            endpoints: self.endpoints.clone(),
            credentials: self.credentials.clone(),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn endpoint(&self, provider: Provider) -> &Url {
        &self.endpoints[provider as usize]
    }

    /// Fails fast, with the reason, when nothing answers at the URL at all.
    /// Any HTTP answer will do: the URL may only expose the webhooks.
    pub async fn check_reachable(&self) -> Result<(), SimulateError> {
        let url = self.url("/healthz");
        match self.client.get(&url).timeout(CONNECT_TIMEOUT).send().await {
            Ok(_) => Ok(()),
            Err(error) => Err(SimulateError::Failed(format!(
                "cannot reach {}: {}",
                self.base,
                chain(&error)
            ))),
        }
    }

    /// Wraps a rendered body with the provider's authentication. A BoldSign
    /// signature is made now (`t` is the sending time, as BoldSign's is).
    pub fn delivery(&self, provider: Provider, body: Vec<u8>) -> Delivery {
        const CHECKED: &str = "credentials are checked for every provider of the run before sending";
        let credential = match provider {
            Provider::AdobeSign => self.credentials.adobe_client_id.clone().expect(CHECKED),
            Provider::FuseSign => self.credentials.fusesign_signature.clone().expect(CHECKED),
            Provider::BoldSign => {
                let key = self.credentials.boldsign_key.as_ref().expect(CHECKED);
                boldsign_signature(key, unix_now(), &body)
            }
        };
        Delivery {
            provider,
            body: Bytes::from(body),
            credential,
        }
    }

    /// Sends once; the latency is until the answer's head arrived. An error
    /// answer's body is read into its detail only as `explain` asks.
    pub async fn send(&self, delivery: &Delivery, explain: Explain) -> (Answer, Duration) {
        let mut request = reqwest::Request::new(Method::POST, self.endpoint(delivery.provider).clone());
        let headers: &mut HeaderMap = request.headers_mut();
        headers.insert(CONTENT_TYPE, JSON);
        let name = match delivery.provider {
            Provider::AdobeSign => ADOBE_CLIENT_ID,
            Provider::BoldSign => BOLDSIGN_SIGNATURE,
            Provider::FuseSign => FUSE_SIGNATURE,
        };
        headers.insert(name, delivery.credential.clone());
        *request.body_mut() = Some(delivery.body.clone().into());

        let started = Instant::now();
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(error) => {
                let latency = started.elapsed();
                let detail = chain(&error);
                return (Answer::Unavailable { status: None, detail }, latency);
            }
        };
        let latency = started.elapsed();
        let status = response.status();
        if status.is_success() {
            // Read to the end so the connection goes back to the pool.
            let _ = response.bytes().await;
            return (Answer::Acknowledged, latency);
        }
        let wanted = match status.is_server_error() {
            true => explain.unavailable,
            false => explain.rejection,
        };
        let detail = match wanted {
            true => describe_error(status.as_u16(), response.text().await.unwrap_or_default()),
            false => {
                let _ = response.bytes().await;
                String::new()
            }
        };
        let answer = match status.is_server_error() {
            true => Answer::Unavailable {
                status: Some(status.as_u16()),
                detail,
            },
            false => Answer::Rejected {
                status: status.as_u16(),
                detail,
            },
        };
        (answer, latency)
    }
}

/// One client per runtime, keeping up to `connections` connections open.
fn build_client(connections: usize) -> Result<reqwest::Client, SimulateError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // Providers do not follow redirects; a redirect is a misconfiguration to report.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("signhook-simulate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| SimulateError::Failed(format!("cannot build the HTTP client: {}", chain(&error))))
}

/// `X-BoldSign-Signature: t=<unix seconds>, s0=<hex HMAC-SHA256 of "<t>.<body>">`.
fn boldsign_signature(key: &Hmac<Sha256>, t: u64, body: &[u8]) -> HeaderValue {
    let mut mac = key.clone();
    let t = t.to_string();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let value = format!("t={t}, s0={}", hex::encode(mac.finalize().into_bytes()));
    HeaderValue::from_str(&value).expect("digits and hex are a valid header value")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `401 invalid_signature: the X-BoldSign-Signature does not match…` from
/// signhook's error shape, else the start of whatever the body was.
fn describe_error(status: u16, body: String) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    match error {
        Some(error) => format!(
            "{status} {}: {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or_default()
        ),
        None => {
            let text: String = body.trim().chars().take(200).collect();
            format!("{status} {text}").trim_end().to_owned()
        }
    }
}

/// An error and its causes on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::boldsign::parse_signature_header;

    #[test]
    fn boldsign_signature_is_the_hmac_of_time_dot_body() {
        let key = Hmac::<Sha256>::new_from_slice(b"secret").expect("any key length");
        let header = boldsign_signature(&key, 1_763_631_687, b"{\"a\":1}");
        let parsed = parse_signature_header(header.to_str().expect("ASCII")).expect("well-formed");
        assert_eq!(parsed.timestamp, 1_763_631_687);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("any key length");
        mac.update(b"1763631687.{\"a\":1}");
        assert_eq!(parsed.signatures, vec![mac.finalize().into_bytes().to_vec()]);
    }

    #[test]
    fn error_bodies_are_summarised() {
        let body = r#"{"error":{"code":"invalid_signature","message":"no match"}}"#;
        assert_eq!(describe_error(401, body.to_owned()), "401 invalid_signature: no match");
        assert_eq!(describe_error(502, "Bad Gateway\n".to_owned()), "502 Bad Gateway");
        assert_eq!(describe_error(503, String::new()), "503");
    }
}
