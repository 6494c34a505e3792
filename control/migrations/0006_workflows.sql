-- Workflows: a draft definition per workflow (JSON as TEXT), and its published versions, each
-- an immutable copy of the definition at publication. A phone number routes to an agent or to
-- a workflow (whose latest published version answers).

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    latest_version BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX workflows_by_workspace ON workflows (workspace_id, id);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    definition TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at_ms BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

ALTER TABLE phone_numbers ADD COLUMN workflow_id TEXT REFERENCES workflows (id);
