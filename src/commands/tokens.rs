//! `sentryk8s tokens create|list|revoke`: API tokens for the web role
//! (docs/operations.md, "Web role").
//!
//! - `create` prints the token alone on standard output (so
//!   `TOKEN=$(sentryk8s tokens create …)` works) and what it is on standard
//!   error; `-o json` prints `{"name","scope","expires_at","token"}`. The
//!   database keeps only the token's SHA-256: it is never shown again.
//! - `list` shows name, scope, created, last used and expiry, never the
//!   token nor its hash.
//! - `revoke NAME` deletes it; every web replica refuses it within a second.
//!
//! Bad input (a bad name, scope or duration, a name taken, an unknown name
//! to revoke) exits with [`EXIT_INVALID`] (2), like every command's bad
//! input; a database failure exits 1.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::EXIT_INVALID;
use crate::checks_file::apply::ensure_migrated;
use crate::cli::{StatusFormat, TokenCreateArgs, TokenFormat, TokensArgs, TokensCommand};
use crate::config::Config;
use crate::tokens::store::{self, TokenInfo, TokenStoreError};
use crate::tokens::{self, Scope};
use crate::{db, shutdown};

pub async fn run(args: TokensArgs, config: Config) -> anyhow::Result<ExitCode> {
    match args.command {
        TokensCommand::Create(args) => {
            // Input is judged before connecting: a typo needs no database.
            let creation = match Creation::parse(&args, Utc::now()) {
                Ok(c) => c,
                Err(e) => return Ok(invalid(&e)),
            };
            create_token(&connect(&config).await?, creation, args.output).await
        }
        TokensCommand::List(args) => {
            let list = store::list(&connect(&config).await?).await?;
            let text = match args.output {
                StatusFormat::Table => table(&list, Utc::now()),
                StatusFormat::Json => serde_json::to_string_pretty(&listed(&list, Utc::now()))? + "\n",
            };
            std::io::stdout().lock().write_all(text.as_bytes()).context("writing the tokens")?;
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke(args) => match store::revoke(&connect(&config).await?, &args.name).await {
            Ok(()) => {
                eprintln!("revoked token \"{}\": every web replica refuses it within a second", args.name);
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ TokenStoreError::Unknown(_)) => Ok(invalid(&e)),
            Err(e) => Err(e.into()),
        },
    }
}

/// A connection to a migrated database.
async fn connect(config: &Config) -> anyhow::Result<tokio_postgres::Client> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let client = db::connect_with_wait(config, "tokens", Duration::ZERO, &token).await?;
    ensure_migrated(&client).await?;
    Ok(client)
}

/// A checked `tokens create`.
struct Creation {
    name: String,
    scope: Scope,
    expires_at: Option<DateTime<Utc>>,
}

impl Creation {
    fn parse(args: &TokenCreateArgs, now: DateTime<Utc>) -> Result<Creation, tokens::TokenInputError> {
        tokens::check_name(&args.name)?;
        let scope = args.scope.parse().map_err(tokens::TokenInputError::Scope)?;
        let expires_at = args.expires.as_deref().map(|text| tokens::expiry(text, now)).transpose()?;
        Ok(Creation { name: args.name.clone(), scope, expires_at })
    }
}

async fn create_token(
    client: &tokio_postgres::Client,
    creation: Creation,
    format: TokenFormat,
) -> anyhow::Result<ExitCode> {
    let token = tokens::generate()?;
    let Creation { name, scope, expires_at } = creation;
    match store::create(client, &name, scope, &tokens::digest(&token), expires_at).await {
        Ok(_) => {}
        Err(e @ TokenStoreError::Exists(_)) => return Ok(invalid(&e)),
        Err(e) => return Err(e.into()),
    }
    let out = match format {
        TokenFormat::Text => format!("{token}\n"),
        TokenFormat::Json => {
            let created = Created { name: &name, scope: scope.as_str(), expires_at, token: &token };
            serde_json::to_string(&created)? + "\n"
        }
    };
    std::io::stdout().lock().write_all(out.as_bytes()).context("writing the token")?;
    let expiry = match expires_at {
        Some(at) => format!("expires {}", timestamp(&at)),
        None => "never expires".to_string(),
    };
    eprintln!(
        "created token \"{name}\" (scope {scope}, {expiry}). It is shown once: store it now; \
         send it as `Authorization: Bearer <token>`."
    );
    Ok(ExitCode::SUCCESS)
}

/// What `-o json` prints for a new token.
#[derive(Serialize)]
struct Created<'a> {
    name: &'a str,
    scope: &'a str,
    expires_at: Option<DateTime<Utc>>,
    token: &'a str,
}

/// A token as `tokens list -o json` shows it.
#[derive(Debug, Serialize, PartialEq)]
struct Listed {
    name: String,
    scope: &'static str,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// Whether it has expired (an expired token stays listed until revoked).
    expired: bool,
}

fn listed(list: &[TokenInfo], now: DateTime<Utc>) -> Vec<Listed> {
    list.iter()
        .map(|t| Listed {
            name: t.name.clone(),
            scope: t.scope.as_str(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            expired: t.expires_at.is_some_and(|at| at <= now),
        })
        .collect()
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// The table of `tokens list`.
fn table(list: &[TokenInfo], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no tokens; create one with `sentryk8s tokens create --name NAME --scope read`\n".into();
    }
    let rows: Vec<[String; 5]> = listed(list, now)
        .into_iter()
        .map(|t| {
            let expires = match (t.expires_at, t.expired) {
                (None, _) => "never".to_string(),
                (Some(at), true) => format!("{} (expired)", timestamp(&at)),
                (Some(at), false) => timestamp(&at),
            };
            [
                t.name,
                t.scope.to_string(),
                timestamp(&t.created_at),
                t.last_used_at.as_ref().map_or_else(|| "never".to_string(), timestamp),
                expires,
            ]
        })
        .collect();
    let header = ["NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

fn invalid(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_table_shows_expiry_and_use_never_a_token() {
        let now = at("2026-06-01T00:00:00Z");
        let list = vec![
            TokenInfo {
                name: "ci".into(),
                scope: Scope::Write,
                created_at: at("2026-01-01T00:00:00Z"),
                expires_at: Some(at("2026-03-01T00:00:00Z")),
                last_used_at: Some(at("2026-02-01T10:00:00Z")),
            },
            TokenInfo {
                name: "grafana".into(),
                scope: Scope::Read,
                created_at: at("2026-01-02T00:00:00Z"),
                expires_at: None,
                last_used_at: None,
            },
        ];
        let text = table(&list, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME     SCOPE  CREATED               LAST USED             EXPIRES");
        assert_eq!(
            lines[1],
            "ci       write  2026-01-01 00:00:00Z  2026-02-01 10:00:00Z  2026-03-01 00:00:00Z (expired)"
        );
        assert_eq!(lines[2], "grafana  read   2026-01-02 00:00:00Z  never                 never");
        let json = serde_json::to_value(listed(&list, now)).unwrap();
        assert_eq!(json[0]["expired"], true);
        assert_eq!(json[1]["expires_at"], serde_json::Value::Null);
    }

    #[test]
    fn bad_input_is_judged_before_any_connection() {
        let args = |name: &str, scope: &str, expires: Option<&str>| TokenCreateArgs {
            name: name.into(),
            scope: scope.into(),
            expires: expires.map(str::to_string),
            output: TokenFormat::Text,
        };
        let now = at("2026-06-01T00:00:00Z");
        assert!(Creation::parse(&args("ci", "write", Some("90d")), now).is_ok());
        let e = Creation::parse(&args("ci", "root", None), now).err().unwrap();
        assert!(e.to_string().starts_with("--scope: unknown scope \"root\""), "{e}");
        assert!(Creation::parse(&args("ci", "read", Some("soon")), now).is_err());
        assert!(Creation::parse(&args("c i", "read", None), now).is_err());
    }
}
