-- Phase timings of the check kinds beyond HTTP (issue 17): the DNS query,
-- ICMP round trips, and a heartbeat's run from `start` to success. Null
-- for a phase a result did not go through, as the other phase columns.
-- Adding nullable columns without a default rewrites nothing, on the
-- partitioned table and every existing partition alike.
ALTER TABLE check_results
    ADD COLUMN query_ms   real,
    ADD COLUMN rtt_min_ms real,
    ADD COLUMN rtt_avg_ms real,
    ADD COLUMN rtt_max_ms real,
    ADD COLUMN run_ms     real;
