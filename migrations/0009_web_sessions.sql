-- 0009_web_sessions: dashboard sign-in sessions (src/web/session.rs).
--
-- A session is made by signing in with an API token. The browser holds a
-- random session id in an HttpOnly cookie; only its SHA-256 is stored here
-- (like tokens: 256 random bits, so a fast hash is enough). Each session
-- belongs to the token it was made with: revoking the token deletes the
-- row (ON DELETE CASCADE), and a lookup also refuses a session whose token
-- has expired, so a revoked or expired token ends its sessions. The scope
-- is the token's, copied for the listing of sessions by an operator.
-- `csrf_secret` is what the dashboard's forms must send back (a forged
-- cross-site POST does not know it).
CREATE TABLE web_sessions (
    id_sha256    text PRIMARY KEY,
    token_id     bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    scope        text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    csrf_secret  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- For the cascade from api_tokens, and for the sweep of expired sessions.
CREATE INDEX web_sessions_token ON web_sessions (token_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
