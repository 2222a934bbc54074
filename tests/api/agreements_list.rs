//! `GET /api/agreements`: listing, filters and cursor pagination.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::*;

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.admin_get(&format!("/api/agreements?{query}")).await;
    assert_eq!(response.status(), 200, "/api/agreements?{query}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agreement_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn agreements_are_listed_newest_first_filtered_and_paginated() {
    let app = spawn_app().await;
    for i in 0..20 {
        let status = if i % 4 == 0 { "SIGNED" } else { "OUT_FOR_SIGNATURE" };
        let event = if i % 4 == 0 {
            "AGREEMENT_WORKFLOW_COMPLETED"
        } else {
            "AGREEMENT_CREATED"
        };
        app.deliver_adobe(&adobe_event(
            &format!("n-{i}"),
            &format!("agr-{i:02}"),
            event,
            Some(status),
            "2026-11-20T09:00:00Z",
        ))
        .await;
    }
    let middle = chrono::Utc::now();
    for i in 0..5 {
        let body = boldsign_event(&format!("b-{i}"), &format!("doc-{i}"), "Sent", None, unix_now());
        assert_eq!(app.post_boldsign(&body).await.status(), 200);
    }
    app.wait_idle().await;

    // Every agreement once over three pages, most recently updated first.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = list(&app, &format!("limit=10&cursor={cursor}")).await;
        pages += 1;
        let times: Vec<String> = page["agreements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["updated_at"].as_str().unwrap().to_owned())
            .collect();
        let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().map(|t| t.parse().unwrap()).collect();
        assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
    assert!(
        seen[..5].iter().all(|id| id.starts_with("doc-")),
        "BoldSign's came last: {seen:?}"
    );

    let boldsign = list(&app, "provider=boldsign&limit=2").await;
    assert_eq!(ids(&boldsign).len(), 2);
    let rest = list(
        &app,
        &format!("provider=boldsign&cursor={}", boldsign["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ids(&rest).len(), 3);
    assert!(rest["next_cursor"].is_null());
    let completed = list(&app, "status=completed").await;
    assert_eq!(ids(&completed).len(), 5);
    assert!(completed["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "completed"));
    assert_eq!(ids(&list(&app, "q=agr-1").await).len(), 10, "agr-10 to agr-19");
    assert_eq!(ids(&list(&app, "q=agr-1_").await).len(), 0, "`_` is not a wildcard");
    assert_eq!(
        ids(&list(&app, "q=mutual%20n").await).len(),
        20,
        "name prefix, any case"
    );
    let after = middle.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let recent = list(&app, &format!("updated_after={}", after.replace('+', "%2B"))).await;
    assert_eq!(ids(&recent).len(), 5, "{recent}");

    for bad in [
        "limit=0",
        "limit=x",
        "status=signed",
        "provider=docusign",
        "cursor=zzz",
        "updated_after=today",
    ] {
        let (status, body) = error_of(app.admin_get(&format!("/api/agreements?{bad}")).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{bad}: {body}"
        );
    }
}
