//! The HTTP side of the simulator: one connection-pooling client for the whole
//! run, the webhook endpoints, deliveries authenticated with each provider's
//! own headers (`providers::traffic`), and what an answer counts as.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use reqwest::{
    header::{HeaderMap, HeaderValue, CONTENT_TYPE},
    Method, Url,
};

use super::SimulateError;
use crate::{outbound::error_chain, providers::Registration};

/// Deliveries wait this long for an answer: above the providers' own 10 s, so
/// a slow server shows as slow rather than as errors.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A signhook deployment as the run's providers see it.
pub struct Target {
    client: reqwest::Client,
    base: String,
    providers: &'static [Registration],
    /// Per provider of the run, in its order.
    endpoints: Vec<Url>,
    /// What each provider of the run authenticates with, in the run's order;
    /// checked to make valid headers before anything is sent.
    credentials: Vec<String>,
}

/// One notification, ready to send and to send again (a duplicate is the
/// same bytes with the same headers, as a provider's retry would be).
#[derive(Clone)]
pub struct Delivery {
    /// Index of the provider in the run's providers.
    pub provider: usize,
    body: Bytes,
    /// Content type and the provider's authentication.
    headers: HeaderMap,
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
    /// prefix); webhooks are under `{base}/webhooks/{provider}`. `credentials`
    /// are those of `providers`, in the same order.
    pub fn new(
        base: &Url,
        connections: usize,
        providers: &'static [Registration],
        credentials: Vec<String>,
    ) -> Result<Self, SimulateError> {
        let base = base.as_str().trim_end_matches('/').to_owned();
        let endpoints = providers
            .iter()
            .map(|provider| {
                Url::parse(&format!("{base}/webhooks/{}", provider.name))
                    .expect("a valid base URL plus a path is valid")
            })
            .collect();
        let client = build_client(connections)?;
        Ok(Self {
            client,
            base,
            providers,
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
            providers: self.providers,
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

    /// The webhook URL of each provider of the run, in its order.
    pub fn endpoints(&self) -> &[Url] {
        &self.endpoints
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
                error_chain(&error)
            ))),
        }
    }

    /// Wraps a rendered body with the authentication of the provider at
    /// `provider` in the run, made now (a signature's time is the sending
    /// time, as BoldSign's is).
    pub fn delivery(&self, provider: usize, body: Vec<u8>) -> Delivery {
        let auth_headers = self.providers[provider].traffic.auth_headers;
        let mut headers = auth_headers(&self.credentials[provider], &body, Utc::now())
            .expect("credentials are checked for every provider of the run before sending");
        headers.insert(CONTENT_TYPE, JSON);
        Delivery {
            provider,
            body: Bytes::from(body),
            headers,
        }
    }

    /// Sends once; the latency is until the answer's head arrived. An error
    /// answer's body is read into its detail only as `explain` asks.
    pub async fn send(&self, delivery: &Delivery, explain: Explain) -> (Answer, Duration) {
        let mut request = reqwest::Request::new(Method::POST, self.endpoints[delivery.provider].clone());
        *request.headers_mut() = delivery.headers.clone();
        *request.body_mut() = Some(delivery.body.clone().into());

        let started = Instant::now();
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(error) => {
                let latency = started.elapsed();
                let detail = error_chain(&error);
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
        .map_err(|error| SimulateError::Failed(format!("cannot build the HTTP client: {}", error_chain(&error))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_summarised() {
        let body = r#"{"error":{"code":"invalid_signature","message":"no match"}}"#;
        assert_eq!(describe_error(401, body.to_owned()), "401 invalid_signature: no match");
        assert_eq!(describe_error(502, "Bad Gateway\n".to_owned()), "502 Bad Gateway");
        assert_eq!(describe_error(503, String::new()), "503");
    }
}
