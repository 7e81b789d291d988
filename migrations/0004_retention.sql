-- 0004_retention: indexes the retention deletes filter by.
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
