-- 0010_heartbeats: heartbeat (push) checks — each one's ping key, and the
-- pings the web role receives.

-- One key per heartbeat check: the secret in its ping URL. Kept here, not
-- in the spec, so that a generated key survives every apply (the spec is
-- rewritten by each one). A key declared as `heartbeat.key: ${VAR}` is
-- also in the spec; this row then mirrors it.
--
-- The key is stored as well as its SHA-256: `checks list --show-ping-urls`
-- and the API (write scopes) must show it again, so it has to be
-- recoverable; pings are looked up by the digest, so the lookup compares
-- digests, not the secret. Treated as a secret everywhere else: never in a
-- log, a page or a read-scope answer.
CREATE TABLE heartbeat_keys (
    check_id    bigint PRIMARY KEY REFERENCES checks (id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (length(key) BETWEEN 8 AND 200),
    key_sha256  text NOT NULL UNIQUE,
    -- true: from `heartbeat.key`; false: generated here.
    declared    boolean NOT NULL,
    -- When the check became a heartbeat: no deadline before it is judged
    -- missed (a new check is not late for a run due before it existed).
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The one place a key is made, so every writer of `checks` (checks apply,
-- the API, a person with psql) agrees, as with the partition trigger:
-- - a check that is (or becomes) a heartbeat gets a key: its declared one,
--   else a generated one (256 bits: SHA-256 of two random UUIDs, 244 random
--   bits), generated once and kept;
-- - a declared key that changes replaces the row's; one that is removed
--   from the file is replaced by a generated one (the old one may have
--   leaked with the file's variables);
-- - a check that stops being a heartbeat loses its key (and pings to it
--   are 404 from then on).
CREATE FUNCTION sentryk8s_heartbeat_key() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    declared_key text := NEW.spec #>> '{heartbeat,key}';
    generated text;
BEGIN
    IF NEW.spec ->> 'kind' IS DISTINCT FROM 'heartbeat' THEN
        DELETE FROM heartbeat_keys WHERE check_id = NEW.id;
        RETURN NULL;
    END IF;
    IF declared_key IS NOT NULL THEN
        INSERT INTO heartbeat_keys (check_id, key, key_sha256, declared)
        VALUES (NEW.id, declared_key, encode(sha256(convert_to(declared_key, 'UTF8')), 'hex'), true)
        ON CONFLICT (check_id) DO UPDATE
            SET key = EXCLUDED.key, key_sha256 = EXCLUDED.key_sha256, declared = true
            WHERE heartbeat_keys.key_sha256 IS DISTINCT FROM EXCLUDED.key_sha256
               OR NOT heartbeat_keys.declared;
    ELSE
        generated := encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex');
        INSERT INTO heartbeat_keys (check_id, key, key_sha256, declared)
        VALUES (NEW.id, generated, encode(sha256(convert_to(generated, 'UTF8')), 'hex'), false)
        ON CONFLICT (check_id) DO UPDATE
            SET key = EXCLUDED.key, key_sha256 = EXCLUDED.key_sha256, declared = false
            WHERE heartbeat_keys.declared;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER checks_heartbeat_key
    AFTER INSERT OR UPDATE OF spec ON checks
    FOR EACH ROW EXECUTE FUNCTION sentryk8s_heartbeat_key();

-- Every ping received. `kind`: success, start, fail, or exit (with the exit
-- code; 0 counts as success). `rid` pairs a start with its end. `body` is
-- the run's log, at most 100 KB (longer bodies are cut by the web role).
-- received_at is the database's clock, the clock slots are dispatched by.
CREATE TABLE heartbeat_pings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    check_id     bigint NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind         text NOT NULL CHECK (kind IN ('success', 'start', 'fail', 'exit')),
    exit_code    integer CHECK ((kind = 'exit') = (exit_code IS NOT NULL) AND exit_code BETWEEN 0 AND 255),
    rid          text CHECK (length(rid) BETWEEN 1 AND 64),
    body         bytea CHECK (length(body) <= 102400),
    source_ip    inet
);
-- The judgement of a slot reads one check's latest pings before it.
CREATE INDEX heartbeat_pings_check_time_idx ON heartbeat_pings (check_id, received_at);
-- Retention deletes by age (as long as results are kept: results.retention_days).
CREATE INDEX heartbeat_pings_received_idx ON heartbeat_pings (received_at);
