//! Deliveries across real processes: a replica killed with a delivery in
//! flight, and two replicas sharing the work.

use std::{collections::HashSet, time::Duration};

use crate::{
    common::{
        adobe_created, adobe_event,
        sink::{verify, Answer, Sink, DELIVERY_SECRET},
    },
    helpers::*,
};

fn delivering_to(sink: &Sink) -> Vec<(&str, &str)> {
    vec![
        ("SIGNHOOK_DELIVERY_URL", sink.url.as_str()),
        ("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET),
        ("SIGNHOOK_DELIVERY_TIMEOUT_MS", "2000"),
        ("SIGNHOOK_DELIVERY_LEASE_SECS", "3"),
        ("SIGNHOOK_DELIVERY_RETRY_SCHEDULE", "200ms,200ms,200ms"),
    ]
}

/// [`delivering_to`] with one sending slot and this lease and timeout.
fn one_slot_delivering_to<'a>(sink: &'a Sink, lease_secs: &'a str, timeout_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = delivering_to(sink);
    env.retain(|(name, _)| !name.ends_with("_LEASE_SECS") && !name.ends_with("_TIMEOUT_MS"));
    env.extend([
        ("SIGNHOOK_DELIVERY_LEASE_SECS", lease_secs),
        ("SIGNHOOK_DELIVERY_TIMEOUT_MS", timeout_ms),
        ("SIGNHOOK_DELIVERY_CONCURRENCY", "1"),
    ]);
    env
}

async fn delivered(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
        .await
}

#[tokio::test]
async fn a_delivery_in_flight_on_a_killed_replica_is_sent_again_under_the_same_webhook_id() {
    let _exclusive = exclusive().await;
    let sink = Sink::start().await;
    // The first attempt gets no answer: its replica dies while it waits.
    sink.plan([Answer {
        delay: Duration::from_secs(60),
        ..Answer::status(200)
    }]);
    let env = delivering_to(&sink);
    let mut first = spawn_app_with(&env).await;
    first.deliver_adobe(&adobe_created(1)).await;
    first
        .wait_until("the first attempt to reach the application", || async {
            sink.count() == 1
        })
        .await;
    first.kill9();

    let second = spawn_app_on(&first.db_name, &env).await;
    second
        .wait_until("the delivery to be delivered", || async {
            delivered(&second).await == 1
        })
        .await;
    let received = sink.received();
    assert_eq!(received.len(), 2, "sent again once");
    assert_eq!(received[0].webhook_id, received[1].webhook_id);
    assert_eq!(received[0].body, received[1].body);
    assert!(received.iter().all(|r| verify(DELIVERY_SECRET, r)));
}

#[tokio::test]
async fn two_replicas_deliver_each_change_once() {
    let _exclusive = exclusive().await;
    let sink = Sink::start().await;
    sink.jitter(20);
    let env = delivering_to(&sink);
    let a = spawn_app_with(&env).await;
    let b = spawn_app_on(&a.db_name, &env).await;
    const AGREEMENTS: usize = 20;
    for i in 0..AGREEMENTS {
        let created = adobe_event(
            &format!("c-{i}"),
            &format!("agr-{i}"),
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:00:00Z",
        );
        let signed = adobe_event(
            &format!("s-{i}"),
            &format!("agr-{i}"),
            "AGREEMENT_WORKFLOW_COMPLETED",
            Some("SIGNED"),
            "2026-11-20T09:10:00Z",
        );
        let (one, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert_eq!(one.post_adobe(&created).await.status(), 200);
        assert_eq!(other.post_adobe(&signed).await.status(), 200);
    }
    a.wait_idle().await;
    // Usually two changes per agreement; one when the two replicas' workers
    // applied the completion first (the creation is then older news).
    let changes = a.count("SELECT count(*) FROM changes").await;
    assert!(changes >= AGREEMENTS as i64, "{changes}");
    a.wait_until("every change delivered", || async { delivered(&a).await == changes })
        .await;
    let received = sink.received();
    let ids: HashSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(received.len(), changes as usize, "nothing sent twice");
    assert_eq!(ids.len(), changes as usize);
    assert!(received.iter().all(|r| verify(DELIVERY_SECRET, r)));
    // Each agreement's changes arrived in the order they were recorded.
    for i in 0..AGREEMENTS {
        let agreement = format!("agr-{i}");
        let sent: Vec<i64> = received
            .iter()
            .map(|r| r.json()["data"].clone())
            .filter(|d| d["agreement_id"] == agreement.as_str())
            .map(|d| d["change_id"].as_i64().unwrap())
            .collect();
        let recorded: Vec<i64> = sqlx::query_scalar("SELECT id FROM changes WHERE agreement_id = $1 ORDER BY id")
            .bind(&agreement)
            .fetch_all(&a.db)
            .await
            .unwrap();
        assert_eq!(sent, recorded, "{agreement}");
    }
    // Both replicas count their deliveries; together, one per change.
    let mut counted = 0.0;
    for app in [&a, &b] {
        let text = app.metrics().await;
        counted += metric_sample(
            &text,
            r#"signhook_deliveries_total{destination="default",outcome="delivered"}"#,
        )
        .unwrap_or(0.0);
        assert_eq!(
            metric_sample(&text, r#"signhook_delivery_backlog{destination="default"}"#),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(counted, changes as f64);
}

/// `signhook listen` receives what the server delivers, verifies it with the
/// secret, and prints it; a wrong signature is answered 401.
#[tokio::test]
async fn listen_prints_each_verified_change() {
    use std::io::{BufRead, BufReader};
    let mut listen = std::process::Command::new(env!("CARGO_BIN_EXE_signhook"))
        .args(["listen", "--listen", "127.0.0.1:0", "--json"])
        .env_clear()
        .env("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("signhook listen starts");
    let mut stderr = BufReader::new(listen.stderr.take().unwrap());
    let mut announced = String::new();
    stderr.read_line(&mut announced).unwrap();
    let url = announced
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {announced:?}"))
        .to_owned();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = listen.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    let app = spawn_app_with(&[
        ("SIGNHOOK_DELIVERY_URL", url.as_str()),
        ("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET),
    ])
    .await;
    app.deliver_adobe(&adobe_created(1)).await;
    let line = tokio::task::spawn_blocking(move || lines_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("listen printed the change");
    let printed: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(printed["verified"], true);
    assert_eq!(printed["payload"]["data"]["agreement_id"], "agr-1");
    assert_eq!(printed["payload"]["data"]["status"], "in_progress");
    assert_eq!(
        printed["webhook_id"],
        format!("chg_{}", printed["payload"]["data"]["change_id"])
    );

    let forged = app
        .client
        .post(&url)
        .header("webhook-id", "chg_1")
        .header("webhook-timestamp", crate::common::unix_now().to_string())
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let _ = listen.kill();
    let _ = listen.wait();
}

#[tokio::test]
async fn deliveries_claimed_but_not_sent_at_shutdown_are_given_back_at_once() {
    use nix::sys::signal::{kill, Signal};
    let _exclusive = exclusive().await;
    let sink = Sink::start().await;
    // The application answers slowly: with one slot, the replica has
    // claimed more than it is sending when it is stopped.
    sink.answer_by_default(Some(Answer {
        delay: Duration::from_millis(1500),
        ..Answer::status(200)
    }));
    // A lease far longer than the test waits: what is delivered in time was
    // given back, not left to expire.
    let env = one_slot_delivering_to(&sink, "120", "5000");
    let mut first = spawn_app_with(&env).await;
    const AGREEMENTS: i64 = 4;
    for i in 0..AGREEMENTS as usize {
        first.deliver_adobe(&adobe_created(i)).await;
    }
    first
        .wait_until("the replica to claim more than it sends", || async {
            first
                .count("SELECT count(*) FROM deliveries WHERE locked_until > now()")
                .await
                > 1
                && sink.count() == 1
        })
        .await;
    kill(first.pid(), Signal::SIGTERM).expect("SIGTERM sent");
    assert!(first.wait_exit(Duration::from_secs(10)).await.success());
    assert_eq!(
        first
            .count("SELECT count(*) FROM deliveries WHERE locked_until > now()")
            .await,
        0,
        "every claim given back or recorded; logs:\n{}",
        first.logs()
    );

    sink.answer_by_default(None);
    let second = spawn_app_on(&first.db_name, &env).await;
    second
        .wait_until("every delivery to be delivered", || async {
            delivered(&second).await == AGREEMENTS
        })
        .await;
    let ids: HashSet<String> = sink.received().into_iter().map(|r| r.webhook_id).collect();
    assert_eq!(ids.len(), AGREEMENTS as usize);
}

/// A slow application: deliveries claimed ahead wait for the one slot, and
/// those whose lease would run out before they could be sent are given back
/// and claimed afresh at once, not left until their lease expires.
#[tokio::test]
async fn claims_that_waited_too_long_for_a_slow_application_are_given_back() {
    let _exclusive = exclusive().await;
    let sink = Sink::start().await;
    sink.answer_by_default(Some(Answer {
        delay: Duration::from_secs(2),
        ..Answer::status(200)
    }));
    // A claim is sent only with 3 s + (10 − 3) / 2 s = 6.5 s of lease left:
    // of four claimed at once, the third and fourth have waited too long
    // after two 2-second answers.
    let env = one_slot_delivering_to(&sink, "10", "3000");
    let app = spawn_app_with(&env).await;
    // Stored while the destination is disabled, so one claim takes all four.
    sqlx::query("UPDATE delivery_destinations SET disabled_at = now()")
        .execute(&app.db)
        .await
        .unwrap();
    const AGREEMENTS: i64 = 4;
    for i in 0..AGREEMENTS as usize {
        app.deliver_adobe(&adobe_created(i)).await;
    }
    sqlx::query("UPDATE delivery_destinations SET disabled_at = NULL")
        .execute(&app.db)
        .await
        .unwrap();
    app.wait_until("the first attempt", || async { sink.count() >= 1 })
        .await;
    let first = std::time::Instant::now();
    app.wait_until("every delivery to be delivered", || async {
        delivered(&app).await == AGREEMENTS
    })
    .await;
    // Given back at about 4 s and sent at once: done at about 8 s. Left to
    // their lease, the last two would go out after 10 s and end at 14 s.
    let took = first.elapsed();
    assert!(
        took < Duration::from_millis(9500),
        "took {took:?}; logs:\n{}",
        app.logs()
    );
    assert_eq!(sink.count() as i64, AGREEMENTS, "each sent once");
}

/// The database goes away while a delivery is in flight: its 2xx cannot be
/// recorded, so once the database is back the delivery is sent again under
/// the same `webhook-id` and recorded — at least once, never lost.
#[tokio::test]
async fn a_delivery_answered_while_the_database_is_down_is_sent_again_and_recorded() {
    use crate::cluster::TempCluster;
    let _exclusive = exclusive().await;
    let cluster = TempCluster::start();
    let sink = Sink::start().await;
    // The first answer comes after the database has been stopped.
    sink.plan([Answer {
        delay: Duration::from_millis(1500),
        ..Answer::status(200)
    }]);
    let mut env = delivering_to(&sink);
    env.push(("SIGNHOOK_DB_ACQUIRE_TIMEOUT_MS", "300"));
    let app = spawn_app_at(&cluster.url(), &env).await;
    app.deliver_adobe(&adobe_created(1)).await;
    app.wait_until("the first attempt to reach the application", || async {
        sink.count() == 1
    })
    .await;
    cluster.stop();
    // The answer arrives (at 1.5 s) and cannot be written.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cluster.restart();

    app.wait_until("the delivery to be recorded delivered", || async {
        delivered(&app).await == 1
    })
    .await;
    let received = sink.received();
    assert!(received.len() >= 2, "sent again: {}", received.len());
    assert!(received.iter().all(|r| r.webhook_id == received[0].webhook_id));
    assert!(received.iter().all(|r| verify(DELIVERY_SECRET, r)));
    assert!(
        app.logs().contains("could not record"),
        "the failed write is reported; logs:\n{}",
        app.logs()
    );
}
