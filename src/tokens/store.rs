//! Every SQL statement on `api_tokens`.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::Scope;

/// A token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub name: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error("a token named \"{0}\" exists already: revoke it first, or choose another name")]
    Exists(String),
    #[error("no token is named \"{0}\"")]
    Unknown(String),
    #[error("database error: {0}")]
    Db(String),
}

fn db(e: tokio_postgres::Error) -> TokenStoreError {
    TokenStoreError::Db(crate::db::error_chain(&e))
}

/// Stores a new token's digest; returns when it was created.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    scope: Scope,
    digest: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, TokenStoreError> {
    let row = client
        .query_opt(
            "INSERT INTO api_tokens (name, scope, token_sha256, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING created_at",
            &[&name, &scope.as_str(), &digest, &expires_at],
        )
        .await
        .map_err(db)?;
    row.map(|r| r.get(0)).ok_or_else(|| TokenStoreError::Exists(name.to_string()))
}

pub async fn list(client: &impl GenericClient) -> Result<Vec<TokenInfo>, TokenStoreError> {
    let rows = client
        .query("SELECT name, scope, created_at, expires_at, last_used_at FROM api_tokens ORDER BY name", &[])
        .await
        .map_err(db)?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            name: r.get(0),
            scope: r.get::<_, &str>(1).parse().unwrap_or(Scope::Read),
            created_at: r.get(2),
            expires_at: r.get(3),
            last_used_at: r.get(4),
        })
        .collect())
}

/// Deletes the token named `name`.
pub async fn revoke(client: &impl GenericClient, name: &str) -> Result<(), TokenStoreError> {
    let n = client.execute("DELETE FROM api_tokens WHERE name = $1", &[&name]).await.map_err(db)?;
    if n == 0 {
        return Err(TokenStoreError::Unknown(name.to_string()));
    }
    Ok(())
}

/// A live token's name and scope by digest (`None`: unknown, revoked or
/// expired — judged by PostgreSQL's clock).
pub async fn lookup(
    client: &impl GenericClient,
    digest: &str,
) -> Result<Option<(String, Scope)>, TokenStoreError> {
    let row = client
        .query_opt(
            "SELECT name, scope FROM api_tokens
              WHERE token_sha256 = $1 AND (expires_at IS NULL OR expires_at > now())",
            &[&digest],
        )
        .await
        .map_err(db)?;
    Ok(row.and_then(|r| Some((r.get(0), r.get::<_, &str>(1).parse().ok()?))))
}

/// Records that the token named `name` was used (called at most once a
/// minute per token and replica, not per request).
pub async fn touch(client: &impl GenericClient, name: &str) -> Result<(), TokenStoreError> {
    client
        .execute("UPDATE api_tokens SET last_used_at = now() WHERE name = $1", &[&name])
        .await
        .map_err(db)?;
    Ok(())
}
