//! The `retrain` binary as a person uses it: the demo end to end, and the
//! operator commands against a running service.

use crate::support::*;
use retrain_testkit::db::url_of;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_demo_plays_all_six_exercises(_: PgPoolOptions, connect: PgConnectOptions) {
    let url = url_of(&connect);
    let (ok, out, err) = tokio::task::spawn_blocking(move || retrain(&["demo"], Some(&url)))
        .await
        .unwrap();
    assert!(ok, "demo failed:\n{out}\n{err}");
    for exercise in [
        "1. traffic and feedback",
        "2. retrain run",
        "3. hot swap",
        "4. poisoning",
        "5. metrics",
        "6. text model",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(exercise))
            .unwrap_or_else(|| panic!("{exercise}:\n{out}"));
        assert!(!line.contains("FAILED"), "{line}");
    }
    assert!(out.contains("collect   pending -> running"), "{out}");
    assert!(out.contains(", 0 failed"), "no request failed during the swaps:\n{out}");
    // The attack never reaches a champion: screening quarantines its source
    // before training, or the gate rejects what it trained; the honest
    // retrain after it is promoted.
    let poisoning = out.lines().find(|l| l.starts_with("4. poisoning")).unwrap();
    let (attack, honest) = poisoning.split_once("honest retrain:").expect(poisoning);
    assert!(
        attack.contains("screening quarantined the source") || attack.contains("rejected"),
        "{poisoning}"
    );
    assert!(honest.contains("promoted"), "{poisoning}");
    // The text model says its data is generated, and it learns its users' words.
    assert!(out.contains("the demo generates (not real data)"), "{out}");
    let text = out.lines().find(|l| l.starts_with("6. text model")).unwrap();
    let counts: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    // "6. text model ... (generated tickets): B -> A of N ..."
    let (before, after) = (counts[1], counts[2]);
    assert!(after > before, "retraining on feedback improves the text model: {text}");
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_demo_explains_a_missing_database_server(_: PgPoolOptions, _connect: PgConnectOptions) {
    // Nothing listens on port 1.
    let (ok, _out, err) = tokio::task::spawn_blocking(|| retrain(&["demo"], Some("postgres://localhost:1/retrain")))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("No PostgreSQL answers at localhost:1"), "{err}");
    assert!(err.contains("docker run"), "{err}");
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn operators_trigger_list_and_promote_from_the_command_line(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    second_model(&app.pool).await;
    let base = app.url("");
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            retrain(&args, None)
        })
        .await
        .unwrap()
    };
    let with_target = |words: &[&str], json: bool| {
        let mut args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        args.extend(["--url".into(), base.clone(), "--token".into(), TOKEN.into()]);
        if json {
            args.push("--json".into());
        }
        args
    };

    let (ok, out, err) = run(with_target(&["runs", "trigger", "--reason", "from the cli"], true)).await;
    assert!(ok, "{err}");
    let triggered: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(triggered["params"]["reason"], "from the cli");
    assert!(triggered["requested_by"].as_str().unwrap().ends_with("@retrain-cli"));

    let (ok, out, _) = run(with_target(&["runs", "list"], false)).await;
    assert!(ok);
    assert!(out.starts_with("id"), "{out}");
    assert!(out.contains(triggered["id"].as_str().unwrap()), "{out}");

    let (ok, out, _) = run(with_target(
        &["models", "promote", "wine-quality", "2", "--reason", "cli test"],
        false,
    ))
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("wine-quality: manual to version 2 (was 1)"), "{out}");
    let (ok, out, _) = run(with_target(&["models", "list"], false)).await;
    assert!(ok);
    let wine: Vec<&str> = out.lines().filter(|l| l.starts_with("wine-quality")).collect();
    assert_eq!(wine.len(), 1, "{out}");
    assert!(wine[0].trim_end().ends_with('2'), "the champion column says 2: {out}");
    let (ok, out, _) = run(with_target(&["models", "show", "wine-quality"], false)).await;
    assert!(ok);
    let serving: Vec<&str> = out.lines().filter(|l| l.contains(" * ")).collect();
    assert_eq!(serving.len(), 1, "{out}");
    assert!(serving[0].starts_with('2'), "{out}");
    let waiting = out
        .lines()
        .find_map(|l| l.strip_prefix("feedback waiting: "))
        .unwrap_or_else(|| panic!("show says what feedback waits: {out}"));
    let (count, rest) = waiting.split_once(' ').unwrap();
    let expected: i64 = sqlx::query_scalar("SELECT feedback_waiting(id) FROM models WHERE name = 'wine-quality'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count.parse::<i64>().unwrap(), expected, "{out}");
    assert!(rest.starts_with("(a run starts at"), "{out}");

    // A rollback goes to an older version only.
    let (ok, _, err) = run(with_target(
        &["models", "rollback", "wine-quality", "2", "--reason", "no"],
        false,
    ))
    .await;
    assert!(!ok);
    assert!(err.contains("older than the champion (2)"), "{err}");
    let (ok, out, err) = run(with_target(
        &["models", "rollback", "wine-quality", "1", "--reason", "back"],
        false,
    ))
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("wine-quality: rollback to version 1 (was 2)"), "{out}");

    // A refusal is an error exit with the service's message.
    let (ok, _, err) = run(vec![
        "runs".into(),
        "retry".into(),
        uuid::Uuid::new_v4().to_string(),
        "--url".into(),
        base.clone(),
        "--token".into(),
        "wrong".into(),
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("401 unauthorized"), "{err}");
    app.stop().await;
}
