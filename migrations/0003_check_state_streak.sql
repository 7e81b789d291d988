-- 0003_check_state_streak: threshold streaks follow slot order.
--
-- `streak_start` is the slot of the oldest result counted in the current
-- streak (the non-zero one of consecutive_failures/consecutive_successes).
-- A result that arrives late (its slot is older than `last_slot`) with the
-- other outcome and a slot after `streak_start` proves the streak was
-- broken in slot order: the worker cuts the streak to the newest result
-- instead of counting failures that were never consecutive. Existing rows
-- start with NULL: their next streak sets it.
ALTER TABLE check_state ADD COLUMN streak_start timestamptz;
