-- 0004_retention: indexes the retention deletes filter by, and daily
-- result partitions created without an exclusive lock on check_results.
--
-- Housekeeping (the scheduler holding partition 0) deletes old rows of
-- `missed_slots`, `notifications` and `notification_deliveries` once an
-- hour. Without these indexes each run is a sequential scan of the whole
-- table, growing with every day of history kept.

-- `DELETE FROM missed_slots WHERE last_slot < cutoff`.
CREATE INDEX missed_slots_last_slot_idx ON missed_slots (last_slot);

-- Old outbox rows and deliveries, by age.
CREATE INDEX notifications_created_at_idx ON notifications (created_at);
CREATE INDEX notification_deliveries_created_at_idx ON notification_deliveries (created_at);

-- Deleting a notification cascades to its deliveries (ON DELETE CASCADE):
-- without an index on the referencing column each deleted row would scan
-- the whole deliveries table.
CREATE INDEX notification_deliveries_notification_idx ON notification_deliveries (notification_id);

-- Daily result partitions are created as plain tables, then attached.
-- `CREATE TABLE … PARTITION OF` (0001) takes ACCESS EXCLUSIVE on
-- check_results: behind one long report query, every result insert would
-- queue behind it, once a day. `ATTACH PARTITION` takes only SHARE UPDATE
-- EXCLUSIVE, which inserts and reads never wait for; the new table is
-- empty, so checking it against its bounds costs nothing. Same signature
-- and behaviour otherwise (idempotent, a lost race is caught).
--
-- The exclusive lock used to serialize concurrent creators (the scheduler
-- ahead of time, a worker on demand); a transaction-scoped advisory lock
-- does it now, so the second one sees the first one's table and skips it
-- rather than failing on the catalog's unique index.
CREATE OR REPLACE FUNCTION sentryk8s_ensure_result_partitions(first_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created integer := 0;
    name text;
BEGIN
    -- "sk_parts" in ASCII, recognisable in pg_locks.
    PERFORM pg_advisory_xact_lock(x'736b5f7061727473'::bigint);
    FOR i IN 0 .. days - 1 LOOP
        d := first_day + i;
        name := 'check_results_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I (LIKE check_results INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
                EXECUTE format(
                    'ALTER TABLE check_results ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                    name, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            EXCEPTION WHEN duplicate_table OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    RETURN created;
END $$;
