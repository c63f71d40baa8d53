-- Online and batch endpoints (one namespace: an endpoint's name is its scoring URL) and
-- their deployments. Each keeps its settings as one JSON document that the serving crate
-- reads; `state` is a deployment's provisioning state (Creating, Updating, Succeeded,
-- Failed), kept apart so a state change does not rewrite the document.
CREATE TABLE endpoints (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE deployments (
    endpoint TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, name)
) {WITHOUT_ROWID};
