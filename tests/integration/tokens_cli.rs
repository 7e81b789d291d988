//! `sentryk8s tokens create|list|revoke` through the real binary: the
//! token alone on standard output, the JSON form, the database holding
//! only its SHA-256, a list that never shows it, revocation, and bad input
//! exiting 2.

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::TestDb;

fn sha256_hex(text: &str) -> String {
    sentryk8s::tokens::digest(text)
}

#[tokio::test]
async fn create_prints_the_token_alone_and_stores_only_its_hash() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    // At trace level: nothing the command logs may carry the token.
    let run = sentryk8s(
        Some(&db),
        &dir,
        &["tokens", "create", "--name", "ci", "--scope", "write", "--expires", "90d"],
        &[("RUST_LOG", "trace")],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let token = run.stdout.strip_suffix('\n').expect("one line");
    assert!(sentryk8s::tokens::well_formed(token), "stdout is the token alone: {:?}", run.stdout);
    assert!(!run.stderr.contains(token), "the token is printed once, on stdout: {}", run.stderr);
    assert!(run.stderr.contains("scope write") && run.stderr.contains("shown once"), "{}", run.stderr);

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT scope, token_sha256, expires_at > now() + interval '89 days',
                    expires_at < now() + interval '91 days'
               FROM api_tokens WHERE name = 'ci'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "write");
    assert_eq!(row.get::<_, String>(1), sha256_hex(token));
    assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3), "expires in 90 days");
    let stored: String =
        client.query_one("SELECT string_agg(t::text, ' ') FROM api_tokens t", &[]).await.unwrap().get(0);
    assert!(!stored.contains(token), "the database never holds the token");

    // The same name again is bad input, and changes nothing.
    let again = sentryk8s(Some(&db), &dir, &["tokens", "create", "--name", "ci", "--scope", "read"], &[], "");
    assert_eq!(again.code, Some(2), "{}", again.all());
    assert!(again.stderr.contains("a token named \"ci\" exists already"), "{}", again.stderr);
    assert!(again.stdout.is_empty(), "no token printed: {}", again.stdout);
    let count: i64 = client.query_one("SELECT count(*) FROM api_tokens", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn create_json_has_the_four_keys() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    let run = sentryk8s(
        Some(&db),
        &dir,
        &["tokens", "create", "--name", "grafana", "--scope", "read", "-o", "json"],
        &[],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON alone");
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "name", "scope", "token"]);
    assert_eq!(v["name"], "grafana");
    assert_eq!(v["scope"], "read");
    assert_eq!(v["expires_at"], serde_json::Value::Null);
    assert!(sentryk8s::tokens::well_formed(v["token"].as_str().unwrap()));

    let run = sentryk8s(
        Some(&db),
        &dir,
        &["tokens", "create", "--name", "deploy", "--scope", "admin", "--expires", "1h", "-o", "json"],
        &[],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1), "{left}");
}

#[tokio::test]
async fn list_never_shows_a_token_and_revoke_removes_it() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    let mut tokens = Vec::new();
    for (name, scope) in [("ci", "write"), ("grafana", "read")] {
        let run =
            sentryk8s(Some(&db), &dir, &["tokens", "create", "--name", name, "--scope", scope], &[], "");
        assert_eq!(run.code, Some(0), "{}", run.all());
        tokens.push(run.stdout.trim().to_string());
    }
    db.client()
        .await
        .execute("UPDATE api_tokens SET expires_at = now() - interval '1 day' WHERE name = 'grafana'", &[])
        .await
        .unwrap();

    let table = sentryk8s(Some(&db), &dir, &["tokens", "list"], &[], "");
    assert_eq!(table.code, Some(0), "{}", table.all());
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("NAME") && lines[0].contains("LAST USED") && lines[0].contains("EXPIRES"));
    assert!(lines[1].starts_with("ci ") && lines[1].contains("write") && lines[1].ends_with("never"));
    assert!(lines[2].starts_with("grafana") && lines[2].ends_with("(expired)"), "{}", lines[2]);

    let json = sentryk8s(Some(&db), &dir, &["tokens", "list", "-o", "json"], &[], "");
    assert_eq!(json.code, Some(0), "{}", json.all());
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["name"], "ci");
    assert_eq!(v[0]["scope"], "write");
    assert_eq!(v[0]["expired"], false);
    assert_eq!(v[1]["expired"], true);
    for key in ["created_at", "last_used_at", "expires_at"] {
        assert!(v[0].get(key).is_some(), "{key}");
    }
    for output in [&table.all(), &json.all()] {
        for token in &tokens {
            assert!(!output.contains(token.as_str()), "a token is listed: {output}");
            assert!(!output.contains(&sha256_hex(token)), "a token's hash is listed: {output}");
        }
    }

    let revoke = sentryk8s(Some(&db), &dir, &["tokens", "revoke", "ci"], &[], "");
    assert_eq!(revoke.code, Some(0), "{}", revoke.all());
    assert!(revoke.stderr.contains("revoked token \"ci\""), "{}", revoke.stderr);
    let names: Vec<String> = db
        .client()
        .await
        .query("SELECT name FROM api_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["grafana"]);

    let unknown = sentryk8s(Some(&db), &dir, &["tokens", "revoke", "ci"], &[], "");
    assert_eq!(unknown.code, Some(2), "an unknown name is bad input: {}", unknown.all());
    assert!(unknown.stderr.contains("no token is named \"ci\""), "{}", unknown.stderr);
}

#[tokio::test]
async fn bad_input_exits_2_without_touching_the_database() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    for (args, says) in [
        (vec!["--name", "ci", "--scope", "root"], "--scope: unknown scope \"root\""),
        (vec!["--name", "ci", "--scope", "read", "--expires", "soon"], "--expires: invalid duration"),
        (vec!["--name", "ci", "--scope", "read", "--expires", "0s"], "--expires: \"0s\" is no time"),
        (vec!["--name", "c i", "--scope", "read"], "--name: ' ' is not allowed"),
    ] {
        let mut full = vec!["tokens", "create"];
        full.extend(args);
        let run = sentryk8s(Some(&db), &dir, &full, &[], "");
        assert_eq!(run.code, Some(2), "{full:?}: {}", run.all());
        assert!(run.stderr.contains(says), "{full:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{full:?}: {}", run.stdout);
    }
    let count: i64 =
        db.client().await.query_one("SELECT count(*) FROM api_tokens", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}
