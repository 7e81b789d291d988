-- 0002_alerting: notification channels, maintenance windows and the
-- per-channel delivery state of every outbox row.
--
-- The `notifications` outbox (0001) keeps one row per state flip, written
-- with the result that caused it. Delivery fans each row out to one
-- `notification_deliveries` row per channel of the check, then drives each
-- of those through pending → sending → sent | failed (or suppressed by a
-- maintenance window).

-- Channels declared in checks files (`alerts:`), written by `checks apply`.
-- `spec` is the channel as the sender needs it, secrets included (after
-- ${VAR} expansion): never printed, never returned by `checks list`.
CREATE TABLE alert_channels (
    name        text PRIMARY KEY CHECK (name <> ''),
    kind        text NOT NULL,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Maintenance windows declared in checks files (`maintenance:`).
CREATE TABLE maintenance_windows (
    name        text PRIMARY KEY CHECK (name <> ''),
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Set once a delivery worker has fanned the row out to its channels (in
-- the same transaction as the delivery rows it created).
ALTER TABLE notifications ADD COLUMN dispatched_at timestamptz;
CREATE INDEX notifications_undispatched_idx ON notifications (id) WHERE dispatched_at IS NULL;

-- One row per notification and channel (and per reminder).
CREATE TABLE notification_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The outbox row; NULL for reminders (they come from check_state).
    notification_id  bigint REFERENCES notifications (id) ON DELETE CASCADE,
    check_id         bigint NOT NULL,
    check_name       text NOT NULL,
    channel          text NOT NULL,
    incident_id      bigint NOT NULL,
    -- down | up | reminder
    event            text NOT NULL CHECK (event IN ('down', 'up', 'reminder')),
    -- The same on every attempt: sent as PagerDuty's dedup_key context and
    -- as the webhooks' Idempotency-Key header, so a receiver can drop a
    -- repeat after a worker died between send and acknowledgement.
    idempotency_key  text NOT NULL UNIQUE,
    payload          jsonb NOT NULL,
    -- pending | sending | sent | failed | suppressed
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    -- When the row may next be claimed. While `sending` it is the end of
    -- the claim's lease: a worker that died mid-send leaves the row to be
    -- claimed again once it passes (judged by PostgreSQL's clock).
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Who holds the claim; after success, who sent it.
    leased_by        text,
    last_error       text,
    -- The maintenance window that suppressed it, or why it was suppressed.
    suppressed_by    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notification_deliveries_incident_idx ON notification_deliveries (check_id, incident_id, channel);
CREATE INDEX notification_deliveries_failed_idx ON notification_deliveries (check_id) WHERE status = 'failed';
