//! PostgreSQL over TLS: `sslmode=require` encrypts and verifies the
//! server's certificate (never falling back to plain text); without it the
//! connection is plain.

use crate::support::{Binary, TestDb};

fn url_with(db: &TestDb, host: &str, query: &str) -> String {
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_query(Some(query));
    url.to_string()
}

#[tokio::test]
async fn require_verifies_the_server_certificate_and_never_falls_back() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    let ssl_on: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let migrate = |url: String, extra: &[(&str, &str)]| {
        let mut env = vec![("SENTRYK8S_DATABASE_URL".to_string(), url)];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Binary::run(&["migrate"], &env)
    };

    if ssl_on != "on" {
        // A server without TLS is refused, not used in clear.
        let (status, out) = migrate(url_with(&db, "127.0.0.1", "sslmode=require"), &[]);
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(out.to_lowercase().contains("tls") || out.contains("SSL"), "{out}");
        return;
    }
    // Debian's default server certificate is self-signed for "localhost".
    // With the system's trust store emptied (SSL_CERT_FILE/SSL_CERT_DIR
    // point nowhere) it is unknown, and refused...
    let no_system = [("SSL_CERT_FILE", "/nonexistent"), ("SSL_CERT_DIR", "/nonexistent")];
    let cert: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let (status, out) = migrate(url_with(&db, "localhost", "sslmode=require"), &no_system);
    assert_eq!(status.code(), Some(1), "an unknown certificate is refused: {out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    // ...until its file is given as a CA.
    let mut trusted = no_system.to_vec();
    trusted.push(("SENTRYK8S_DATABASE__CA_FILE", &cert));
    let (status, out) = migrate(url_with(&db, "localhost", "sslmode=require"), &trusted);
    assert!(status.success(), "trusted through database.ca_file: {out}");
    assert!(out.contains("applied 0001_init.sql"), "{out}");

    // libpq's stricter modes, as cloud providers' guides write them, mean
    // the same here.
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        let (status, out) = migrate(url_with(&db, "localhost", mode), &trusted);
        assert!(status.success(), "{mode}: {out}");
        let (status, out) = migrate(url_with(&db, "localhost", mode), &no_system);
        assert_eq!(status.code(), Some(1), "{mode} verifies the certificate: {out}");
    }

    // The name is verified too: the certificate is not for 127.0.0.1.
    let (status, out) = migrate(url_with(&db, "127.0.0.1", "sslmode=require"), &trusted);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    // Without sslmode=require: plain, whatever the server offers.
    let (status, out) = migrate(url_with(&db, "127.0.0.1", "application_name=plain"), &[]);
    assert!(status.success(), "{out}");
}

#[test]
fn a_bad_ca_file_is_a_configuration_error() {
    let (status, out) =
        Binary::run(&["config"], &[("SENTRYK8S_DATABASE__CA_FILE".into(), "/nonexistent/ca.pem".into())]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("database.ca_file") && out.contains("/nonexistent/ca.pem"), "{out}");
}
