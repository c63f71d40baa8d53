-- Jobs, compute targets and versioned assets (data and environments; models are the
-- registry's model versions).

CREATE TABLE compute_targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    max_concurrent_jobs BIGINT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);

-- A job is also an MLflow run (run_id = the job's name). `spec` is the submitted job as JSON;
-- `runner` is what the compute backend needs to find a running job again after a restart.
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    experiment_id BIGINT NOT NULL,
    compute TEXT NOT NULL,
    status TEXT NOT NULL,
    failure TEXT,
    spec TEXT NOT NULL,
    tags TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    archived BIGINT NOT NULL,
    runner TEXT
);
CREATE INDEX jobs_by_status ON jobs (status, compute, created_at);
CREATE INDEX jobs_by_time ON jobs (created_at);

-- Each status a job passed through, once, with when.
CREATE TABLE job_transitions (
    job_name TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_name, status)
) {WITHOUT_ROWID};

-- seq orders versions by creation (`@latest` is the most recently created, not the greatest
-- version string); content_hash decides whether re-registering a version is the same asset.
CREATE TABLE assets (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    seq BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    archived BIGINT NOT NULL,
    PRIMARY KEY (kind, name, version)
) {WITHOUT_ROWID};
CREATE INDEX assets_by_seq ON assets (kind, name, seq);
INSERT INTO kiln_counters (name, value) VALUES ('asset', 0);
