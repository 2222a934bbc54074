//! The pure work of the receive path, per provider: authenticate the request,
//! then extract the event from the documented payload. Run with
//! `cargo bench --bench hot_paths`; figures are in BENCHMARKS.md.

use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use figment::{providers::Serialized, Figment};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use signhook::{
    config::{Config, Settings},
    providers::Providers,
};

const ADOBE: &[u8] = include_bytes!("../tests/fixtures/adobe-sign-agreement-action-completed.json");
const BOLDSIGN: &[u8] = include_bytes!("../tests/fixtures/boldsign-completed.json");
const FUSESIGN: &[u8] = include_bytes!("../tests/fixtures/fusesign-customer-document-signed.json");

const BOLDSIGN_SECRETS: &str = "rotated-out-secret,current-secret";

fn providers() -> Providers {
    let settings = [
        ("adobe_sign_client_ids", "other-client,bench-client"),
        ("boldsign_secrets", BOLDSIGN_SECRETS),
        ("fusesign_signatures", "bench-fuse-signature"),
    ];
    let figment = settings.iter().fold(
        Figment::from(Serialized::defaults(Settings::default())),
        |figment, (key, value)| figment.merge(Serialized::default(key, value)),
    );
    Providers::from_config(&Config::from_figment(figment).expect("bench configuration is valid"))
        .expect("bench providers build")
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_str(value).expect("bench header is valid"));
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

/// A BoldSign header signed with the second (current) secret, so the check
/// tries the first one too, as during a rotation.
fn boldsign_signature(body: &[u8]) -> String {
    let t = Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"current-secret").expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t}, s0={}", hex::encode(mac.finalize().into_bytes()))
}

fn receive_path(c: &mut Criterion) {
    let providers = providers();
    let cases = [
        (
            "adobe-sign",
            ADOBE,
            headers(&[("x-adobesign-clientid", "bench-client".into())]),
        ),
        (
            "boldsign",
            BOLDSIGN,
            headers(&[("x-boldsign-signature", boldsign_signature(BOLDSIGN))]),
        ),
        (
            "fusesign",
            FUSESIGN,
            headers(&[("fuse-signature", "bench-fuse-signature".into())]),
        ),
    ];
    let mut group = c.benchmark_group("receive");
    for (name, body, headers) in &cases {
        let provider = providers.get(name).expect("registered provider");
        let now = Utc::now();
        provider
            .authenticate(headers, body, now)
            .expect("bench request authenticates");
        provider.parse(body).expect("bench payload parses");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{name}/authenticate"), |b| {
            b.iter(|| provider.authenticate(black_box(headers), black_box(body), now))
        });
        group.bench_function(format!("{name}/parse"), |b| b.iter(|| provider.parse(black_box(body))));
    }
    group.finish();
}

criterion_group!(benches, receive_path);
criterion_main!(benches);
