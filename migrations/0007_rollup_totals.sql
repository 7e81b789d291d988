-- 0007_rollup_totals: cumulative daily totals, "an odometer" (docs/history.md).
--
-- Row (c, D) holds the sum of every rollup_days row of check c with a
-- bucket at or before day D, plus the check's baseline. A report over a
-- window of days [A, B) is then, per check, the latest row before B minus
-- the latest row before A: two rows per check instead of one per day (a
-- 30-day report of 10,000 checks summed 300,000 rows of 40-bucket
-- histograms). A check has a row for each day it has a daily row, and
-- one anchor row at bucket '-infinity': its baseline, zero until
-- retention prunes daily rows (their sums are then folded into it), and the
-- row writers lock to serialize a check's upkeep
-- (src/history/store/mod.rs, LOCK_TOTALS).
--
-- Kept by the same statement that upserts the daily rows (worker result
-- batches, the scheduler's missed-slot flush, rollups rebuild), which adds
-- each increment to the check's rows from that day on.
CREATE TABLE rollup_day_totals (LIKE rollup_days INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE rollup_day_totals ADD PRIMARY KEY (check_id, bucket);

-- A report reads the rows of one day for every check (the day before
-- each end of its window) as one range of this index.
CREATE INDEX rollup_day_totals_bucket_idx ON rollup_day_totals (bucket);

-- The daily rows already stored: every check's anchor, then the running sums.
INSERT INTO rollup_day_totals (check_id, bucket, latency_histogram)
SELECT DISTINCT check_id, '-infinity'::timestamptz, array_fill(0, ARRAY[40]) FROM rollup_days;

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
WINDOW w AS (PARTITION BY check_id ORDER BY bucket);
