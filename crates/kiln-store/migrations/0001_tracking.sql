-- Portable DDL for SQLite and PostgreSQL. `{WITHOUT_ROWID}` becomes `WITHOUT ROWID` on SQLite
-- (rows live in their primary-key b-tree once, instead of a table plus an index) and nothing
-- on PostgreSQL.
-- Integers are BIGINT everywhere so the Any driver decodes them as i64 on both.
-- Timestamps are milliseconds since the epoch.

CREATE TABLE kiln_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO kiln_counters (name, value) VALUES ('experiment', 0);
INSERT INTO kiln_counters (name, value) VALUES ('run', 0);

CREATE TABLE experiments (
    experiment_id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) {WITHOUT_ROWID};

-- run_key: a compact integer for the run, used by every per-run side table; the 32-character
-- run_id would otherwise be repeated in every metric point, param and tag, and compared in
-- every index lookup.
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    run_key BIGINT NOT NULL UNIQUE,
    experiment_id BIGINT NOT NULL,
    run_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time BIGINT,
    end_time BIGINT,
    artifact_uri TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    deleted_time BIGINT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);

CREATE TABLE params (
    run_key BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_key, key)
) {WITHOUT_ROWID};

CREATE TABLE tags (
    run_key BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_key, key)
) {WITHOUT_ROWID};

-- Every logged point. NaN is stored as value NULL with is_nan = 1, because SQLite turns NaN
-- into NULL anyway and both databases then behave alike in filters and ordering.
-- value_bits holds the value's exact IEEE-754 bits: reads render integers (exact and much
-- cheaper than formatting reals), and re-logging an identical point, NaN included, is a no-op.
CREATE TABLE metrics (
    run_key BIGINT NOT NULL,
    key TEXT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value DOUBLE PRECISION,
    value_bits BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    -- Serves history reads (its prefix) and makes re-logging an identical point a no-op.
    PRIMARY KEY (run_key, key, step, timestamp, value_bits)
) {WITHOUT_ROWID};
CREATE INDEX metrics_by_model ON metrics (model_id) WHERE model_id IS NOT NULL;

-- The value each run shows for a key: the (step, timestamp, value) maximum.
CREATE TABLE latest_metrics (
    run_key BIGINT NOT NULL,
    key TEXT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value DOUBLE PRECISION,
    value_bits BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_key, key)
) {WITHOUT_ROWID};

CREATE TABLE run_dataset_inputs (
    run_key BIGINT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    context TEXT,
    tags_json TEXT NOT NULL,
    PRIMARY KEY (run_key, name, digest)
) {WITHOUT_ROWID};

CREATE TABLE run_model_io (
    run_key BIGINT NOT NULL,
    direction TEXT NOT NULL,
    model_id TEXT NOT NULL,
    step BIGINT NOT NULL,
    PRIMARY KEY (run_key, direction, model_id)
) {WITHOUT_ROWID};

CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    model_type TEXT,
    source_run_id TEXT,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    lifecycle_stage TEXT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) {WITHOUT_ROWID};

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) {WITHOUT_ROWID};

CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    description TEXT,
    user_id TEXT,
    last_version BIGINT NOT NULL
);

CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
) {WITHOUT_ROWID};

CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    user_id TEXT,
    current_stage TEXT NOT NULL,
    description TEXT,
    source TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    model_id TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    PRIMARY KEY (name, version)
);

CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
) {WITHOUT_ROWID};

CREATE TABLE registered_model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
) {WITHOUT_ROWID};

CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL,
    client_request_id TEXT,
    request_time BIGINT NOT NULL,
    execution_duration BIGINT,
    state TEXT NOT NULL,
    request_preview TEXT,
    response_preview TEXT
);
CREATE INDEX traces_by_experiment ON traces (experiment_id, request_time);

CREATE TABLE trace_metadata (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
) {WITHOUT_ROWID};

CREATE TABLE trace_tags (
    trace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
) {WITHOUT_ROWID};
