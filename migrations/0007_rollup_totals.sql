-- 0007_rollup_totals: cumulative daily totals, "an odometer" (docs/history.md).
--
-- Row (c, D) holds the sum of every rollup_days row of check c with a
-- bucket at or before day D, plus the check's baseline (what retention
-- pruned, kept in an anchor row at bucket '-infinity'). Rows exist for
-- CLOSED days only: days that have ended and that the scheduler's
-- housekeeping has closed (rollup_day_totals_closed; store/totals.rs,
-- close_day_totals), and only where the check has a daily row that day.
-- The value of a check before day X is then its latest totals row before
-- X plus the daily rows after that row and before X (usually today's
-- only): a report over a window of days reads ~2 totals rows and a daily
-- row per check instead of one row per day. Live writers only add a late
-- increment to the totals rows of closed days at or after its day (in the
-- common case, today, none), so they write no extra rows.
CREATE TABLE rollup_day_totals (LIKE rollup_days INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE rollup_day_totals ADD PRIMARY KEY (check_id, bucket);

-- A report reads the rows of one day for every check (the day before
-- each end of its window) as one range of this index.
CREATE INDEX rollup_day_totals_bucket_idx ON rollup_day_totals (bucket);

-- The first day not closed yet: all earlier days are closed.
CREATE TABLE rollup_day_totals_closed (
    one bool PRIMARY KEY DEFAULT true CHECK (one),
    day timestamptz NOT NULL
);
INSERT INTO rollup_day_totals_closed (day) VALUES (date_trunc('day', now(), 'UTC'));

-- The daily rows already stored, of the days closed above: running sums.
INSERT INTO rollup_day_totals (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                               total_us_sum, latency_histogram)
SELECT check_id, bucket,
       sum(up_ms) OVER w, sum(down_ms) OVER w, sum(no_data_ms) OVER w, sum(maintenance_ms) OVER w,
       sum(runs) OVER w, sum(failures) OVER w, sum(total_us_sum) OVER w,
       ARRAY[
           sum(latency_histogram[1]) OVER w,
           sum(latency_histogram[2]) OVER w,
           sum(latency_histogram[3]) OVER w,
           sum(latency_histogram[4]) OVER w,
           sum(latency_histogram[5]) OVER w,
           sum(latency_histogram[6]) OVER w,
           sum(latency_histogram[7]) OVER w,
           sum(latency_histogram[8]) OVER w,
           sum(latency_histogram[9]) OVER w,
           sum(latency_histogram[10]) OVER w,
           sum(latency_histogram[11]) OVER w,
           sum(latency_histogram[12]) OVER w,
           sum(latency_histogram[13]) OVER w,
           sum(latency_histogram[14]) OVER w,
           sum(latency_histogram[15]) OVER w,
           sum(latency_histogram[16]) OVER w,
           sum(latency_histogram[17]) OVER w,
           sum(latency_histogram[18]) OVER w,
           sum(latency_histogram[19]) OVER w,
           sum(latency_histogram[20]) OVER w,
           sum(latency_histogram[21]) OVER w,
           sum(latency_histogram[22]) OVER w,
           sum(latency_histogram[23]) OVER w,
           sum(latency_histogram[24]) OVER w,
           sum(latency_histogram[25]) OVER w,
           sum(latency_histogram[26]) OVER w,
           sum(latency_histogram[27]) OVER w,
           sum(latency_histogram[28]) OVER w,
           sum(latency_histogram[29]) OVER w,
           sum(latency_histogram[30]) OVER w,
           sum(latency_histogram[31]) OVER w,
           sum(latency_histogram[32]) OVER w,
           sum(latency_histogram[33]) OVER w,
           sum(latency_histogram[34]) OVER w,
           sum(latency_histogram[35]) OVER w,
           sum(latency_histogram[36]) OVER w,
           sum(latency_histogram[37]) OVER w,
           sum(latency_histogram[38]) OVER w,
           sum(latency_histogram[39]) OVER w,
           sum(latency_histogram[40]) OVER w
       ]::int4[]
  FROM rollup_days
 WHERE bucket < date_trunc('day', now(), 'UTC')
WINDOW w AS (PARTITION BY check_id ORDER BY bucket);
