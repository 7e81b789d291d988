-- 0005_history: time-based uptime history (docs/history.md).
--
-- Every slot of a check accounts for its interval's time: a result adds it
-- to the state the check was in after that result, a missed or stale slot
-- to "no data", a slot inside a maintenance window covering the check to
-- "maintenance". Hourly and daily rollups hold those sums, upserted in the
-- transaction that stores the results or records the missed slots, so a
-- report never scans raw results beyond their retention.

-- The state the check was in after this result ('up', 'down', 'unknown'),
-- written by the worker in the same statement that stores the result, so
-- `rollups rebuild` finds exactly what live upkeep counted. NULL for rows
-- stored before this migration and for a result of a check paused or
-- deleted while its job was in flight: those count by their own outcome.
-- `interval_ms`: the time the slot accounts for, as the job carried it (an
-- interval edited later must not change the history already written).
-- Nullable, without default and without a CHECK constraint: adding them
-- neither rewrites nor scans 30 days of partitions under an exclusive lock
-- (the worker is the only writer, and history reads anything else as NULL).
ALTER TABLE check_results ADD COLUMN state text;
ALTER TABLE check_results ADD COLUMN interval_ms integer;

-- The interval of a missed range's slots. A range of several slots also
-- gives it as (last_slot - first_slot) / (slots - 1); a single stale slot
-- needs it stored. NULL for rows recorded before this migration: the
-- check's current interval is used.
ALTER TABLE missed_slots ADD COLUMN interval_ms integer;

-- One row per check and UTC hour (rollup_hours) or UTC day (rollup_days).
-- `bucket` is the start of the hour or day. The *_ms columns are time
-- split exactly at bucket boundaries (a slot straddling an hour adds to
-- both); `runs`, `failures`, the histogram and `total_us_sum` go to the
-- bucket holding the slot's start.
--
-- `latency_histogram` (40 elements) counts successful runs by total_ms in
-- fixed half-octave buckets (src/history/histogram.rs: 1-based element 1
-- is under 1 ms, element i covers [2^((i-2)/2), 2^((i-1)/2)) ms, the last
-- is everything from 2^19 ms): p50/p95/p99 come from it. `total_us_sum` is the sum of
-- total_ms of successful runs, in integer microseconds so that sums are
-- exact in any order (a rebuild matches live upkeep to the microsecond).
CREATE TABLE rollup_hours (
    check_id           bigint NOT NULL,
    bucket             timestamptz NOT NULL,
    up_ms              bigint NOT NULL DEFAULT 0,
    down_ms            bigint NOT NULL DEFAULT 0,
    no_data_ms         bigint NOT NULL DEFAULT 0,
    maintenance_ms     bigint NOT NULL DEFAULT 0,
    runs               integer NOT NULL DEFAULT 0,
    failures           integer NOT NULL DEFAULT 0,
    total_us_sum       bigint NOT NULL DEFAULT 0,
    latency_histogram  integer[] NOT NULL,
    PRIMARY KEY (check_id, bucket)
);
CREATE TABLE rollup_days (LIKE rollup_hours INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE rollup_days ADD PRIMARY KEY (check_id, bucket);

-- Retention deletes by age.
CREATE INDEX rollup_hours_bucket_idx ON rollup_hours (bucket);
CREATE INDEX rollup_days_bucket_idx ON rollup_days (bucket);

-- Incidents, first-class. `id` comes from incident_id_seq (0001), the id
-- check_state, the outbox rows, the deliveries and the alert payloads
-- already carry. No foreign key to checks: history outlives a deleted
-- check, so the name is kept here.
--
-- opened_at: the first failing slot of the streak that went down (not the
-- confirming one); confirmed_at: the slot whose failure reached the
-- threshold; resolved_at: the first passing slot of the streak that
-- recovered (or when the check was paused or deleted while down).
CREATE TABLE incidents (
    id              bigint PRIMARY KEY,
    check_id        bigint NOT NULL,
    check_name      text NOT NULL,
    opened_at       timestamptz NOT NULL,
    confirmed_at    timestamptz NOT NULL,
    resolved_at     timestamptz,
    -- recovered | paused | deleted; NULL while open.
    resolution      text CHECK (resolution IN ('recovered', 'paused', 'deleted')),
    first_error     text,
    last_error      text,
    -- Whether opened_at fell inside a maintenance window covering the check.
    in_maintenance  boolean NOT NULL DEFAULT false,
    -- Alert deliveries sent for it (trigger, reminders, recovery).
    alerts_sent     integer NOT NULL DEFAULT 0,
    CHECK (resolved_at IS NULL OR resolution IS NOT NULL)
);
CREATE INDEX incidents_check_idx ON incidents (check_id, opened_at);
CREATE INDEX incidents_opened_idx ON incidents (opened_at);
CREATE INDEX incidents_open_idx ON incidents (check_id) WHERE resolved_at IS NULL;

-- The incidents the outbox already knows (notifications are kept for
-- `alerts.retention_days`): each `down` row, with its `up` row if any.
INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution,
                       first_error, last_error, alerts_sent)
SELECT d.incident_id, d.check_id, d.check_name, d.slot, d.slot, u.slot,
       CASE WHEN u.slot IS NULL THEN NULL
            WHEN u.payload->>'reason' IN ('paused', 'deleted') THEN u.payload->>'reason'
            ELSE 'recovered' END,
       d.payload->>'last_error', coalesce(u.payload->>'last_error', d.payload->>'last_error'),
       (SELECT count(*) FROM notification_deliveries x
         WHERE x.check_id = d.check_id AND x.incident_id = d.incident_id AND x.status = 'sent')
  FROM notifications d
  LEFT JOIN LATERAL (SELECT n.slot, n.payload FROM notifications n
                      WHERE n.check_id = d.check_id AND n.incident_id = d.incident_id AND n.event = 'up'
                      ORDER BY n.slot LIMIT 1) u ON true
 WHERE d.event = 'down'
ON CONFLICT (id) DO NOTHING;

-- Checks down now whose trigger row has already been pruned.
INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, last_error)
SELECT s.incident_id, s.check_id, c.name,
       CASE WHEN s.consecutive_failures > 0 THEN least(coalesce(s.streak_start, s.since), s.since) ELSE s.since END,
       s.since, s.last_error
  FROM check_state s JOIN checks c ON c.id = s.check_id
 WHERE s.status = 'down' AND s.incident_id IS NOT NULL
ON CONFLICT (id) DO NOTHING;
