-- Schedules: the bundled schedule spec, whether it is on, and when it fires next. A fire is
-- claimed by moving `next_fire_at` with a compare-and-set, so two servers on one database
-- never both fire it. `anchor_at` is what a recurrence counts its periods from (the start
-- time, else when the schedule was made).
CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    source TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    anchor_at BIGINT NOT NULL,
    next_fire_at BIGINT
);
CREATE INDEX schedules_by_next_fire ON schedules (enabled, next_fire_at);

-- Each time a schedule was due: the job it created, or why none was (skipped while the
-- server was down, or the job could not be submitted).
CREATE TABLE schedule_fires (
    schedule TEXT NOT NULL,
    fire_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    job_name TEXT,
    message TEXT,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (schedule, fire_at)
) {WITHOUT_ROWID};
