-- Add hourly_counts: per-camera totals of analytics readings, one row per hour.
CREATE TABLE hourly_counts (
    camera_id INTEGER NOT NULL,
    hour_start TIMESTAMP NOT NULL,
    total_count BIGINT NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (camera_id, hour_start)
);
