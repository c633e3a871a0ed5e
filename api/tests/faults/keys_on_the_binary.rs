//! Client keys on the real `retrain` binary (issue 15), as a client meets
//! them: feedback without a key, with a key lacking the scope, or with a
//! revoked key is refused in the one JSON error shape and stores nothing;
//! rows belong to the key that sent them whatever the body's `source`
//! claims; a flooding key gets 429 with `Retry-After` while another key's
//! feedback keeps landing.

use crate::support::*;
use retrain_steps::ml::Split;
use retrain_testkit::db::count;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Sends one feedback row with `key` (none: no `Authorization` header);
/// returns the status, the `Retry-After` seconds if any, and the JSON body.
async fn send(api: &Process, key: Option<&str>, body: &Value) -> (u16, Option<u64>, Value) {
    let mut request = api.client.post(api.url("/feedback")).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn keys_decide_who_sends_feedback_and_whose_rows_they_are(_: PgPoolOptions, connect: PgConnectOptions) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let api = RETRAIN
        .start(
            Role::Api,
            &url,
            &[("RETRAIN_FEEDBACK_RATE", "1"), ("RETRAIN_FEEDBACK_BURST", "5")],
        )
        .await;
    let rows = split_rows(&pool, Split::Pool).await;
    let body = |i: usize, source: &str| json!({"features": rows[i].input.features(), "correct_label": rows[i].label, "source": source});

    let reader = api.make_key("reader", &["predict"]).await;
    let leaving = api.make_key("leaving", &["feedback"]).await;
    assert_eq!(api.admin_post("/keys/leaving/revoke", json!({})).await.status(), 200);
    for (key, status, code) in [
        (None, 401, "unauthorized"),
        (Some("rtk_not-a-key"), 401, "unauthorized"),
        (Some(leaving.as_str()), 401, "unauthorized"),
        (Some(reader.as_str()), 403, "forbidden"),
    ] {
        let (got, _, error) = send(&api, key, &body(0, "anyone")).await;
        assert_eq!(got, status, "{key:?}: {error}");
        assert_eq!(error["error"]["code"], code, "{key:?}: {error}");
        assert!(
            error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM feedback").await,
        0,
        "nothing stored from refused requests"
    );

    let alice = api.make_key("alice", &["feedback"]).await;
    let bob = api.make_key("bob", &["feedback"]).await;
    for (i, (key, claims)) in [(&alice, "bob"), (&bob, "alice"), (&alice, "admin")]
        .into_iter()
        .enumerate()
    {
        let (status, _, answer) = send(&api, Some(key), &body(i, claims)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let attributed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT source, sub_label FROM feedback ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected = [("alice", "bob"), ("bob", "alice"), ("alice", "admin")]
        .map(|(source, sub)| (source.to_owned(), Some(sub.to_owned())));
    assert_eq!(
        attributed, expected,
        "the source is the key's name; the body's claim a sub-label"
    );

    // alice has used 2 of her burst of 5: a flood of 20 is cut off.
    let mut refused = 0;
    for i in 0..20 {
        let (status, retry_after, answer) = send(&api, Some(&alice), &body(i, "flood")).await;
        match status {
            201 => {}
            429 => {
                refused += 1;
                assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After: {retry_after:?}");
                assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
            }
            other => panic!("flood answered {other}: {answer}"),
        }
    }
    assert!(refused >= 10, "only {refused} of 20 refused at 1 row/s, burst 5");
    let (status, _, answer) = send(&api, Some(&bob), &body(0, "calm")).await;
    assert_eq!(status, 201, "another key's feedback lands during the flood: {answer}");
}
