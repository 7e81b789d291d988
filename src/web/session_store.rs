//! Every SQL statement on `web_sessions` (the dashboard's sign-in
//! sessions, `session.rs`). Times are judged by PostgreSQL's clock, as
//! token expiry is.

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::tokens::Scope;

/// A live session, as a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The name of the token it was made with (logs and the page show it).
    pub token: String,
    pub scope: Scope,
    /// What the session's forms send back.
    pub csrf_secret: String,
}

/// Makes a session for the live token whose digest is `token_digest`:
/// `None` when no live token has it (unknown, expired or revoked). The
/// session ends after `lifetime`, or when its token expires if sooner.
/// Expired sessions of every token are deleted on the way (a sign-in is
/// rare, and this keeps the table to the live sessions without a loop).
pub async fn create(
    client: &impl GenericClient,
    id_digest: &str,
    token_digest: &str,
    csrf_secret: &str,
    lifetime: Duration,
) -> Result<Option<SessionRow>, tokio_postgres::Error> {
    client.execute("DELETE FROM web_sessions WHERE expires_at <= now()", &[]).await?;
    let seconds = lifetime.as_secs_f64();
    let row = client
        .query_opt(
            "WITH t AS (SELECT id, name, scope, expires_at FROM api_tokens
                         WHERE token_sha256 = $2 AND (expires_at IS NULL OR expires_at > now())),
                  s AS (INSERT INTO web_sessions (id_sha256, token_id, scope, csrf_secret, expires_at)
                        SELECT $1, t.id, t.scope, $3,
                               least(now() + make_interval(secs => $4), coalesce(t.expires_at, 'infinity'))
                          FROM t
                        RETURNING csrf_secret)
             SELECT t.name, t.scope, s.csrf_secret FROM t, s",
            &[&id_digest, &token_digest, &csrf_secret, &seconds],
        )
        .await?;
    Ok(row.and_then(row_of))
}

/// The live session whose id has digest `id_digest`: its token must still
/// exist (revoking deletes the session with it) and not have expired.
pub async fn lookup(
    client: &impl GenericClient,
    id_digest: &str,
) -> Result<Option<SessionRow>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT t.name, t.scope, s.csrf_secret
               FROM web_sessions s JOIN api_tokens t ON t.id = s.token_id
              WHERE s.id_sha256 = $1 AND s.expires_at > now()
                AND (t.expires_at IS NULL OR t.expires_at > now())",
            &[&id_digest],
        )
        .await?;
    Ok(row.and_then(row_of))
}

/// Ends the session whose id has digest `id_digest` (sign-out).
pub async fn delete(client: &impl GenericClient, id_digest: &str) -> Result<(), tokio_postgres::Error> {
    client.execute("DELETE FROM web_sessions WHERE id_sha256 = $1", &[&id_digest]).await?;
    Ok(())
}

fn row_of(row: tokio_postgres::Row) -> Option<SessionRow> {
    Some(SessionRow {
        token: row.get(0),
        scope: row.get::<_, &str>(1).parse().ok()?,
        csrf_secret: row.get(2),
    })
}
