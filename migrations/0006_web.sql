-- 0006_web: the web role's API — who owns a check, and API tokens.

-- Checks declared in files are owned by files; checks created through the
-- API by the API. `checks apply` never updates nor prunes an API-owned
-- check, and the API refuses to change a file-owned one (409) unless an
-- admin token forces it. A constant default: adding it rewrites nothing.
ALTER TABLE checks ADD COLUMN owner text NOT NULL DEFAULT 'file' CHECK (owner IN ('file', 'api'));

-- API tokens. Only a SHA-256 of the token is stored (tokens are 256 random
-- bits, so a fast hash is enough: there is nothing to brute-force). Scopes
-- nest: admin ⊃ write ⊃ read. Revoking deletes the row; every web replica
-- stops accepting it within its one-second cache.
CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name <> ''),
    scope         text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz
);
