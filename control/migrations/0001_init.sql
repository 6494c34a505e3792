-- Freya's schema, one migration tree for both engines: SQLite embedded, and the PostgreSQL wire
-- protocol (CockroachDB in production, PostgreSQL in tests). Portable by design (see
-- ARCHITECTURE.md): UUIDv7 text ids, BIGINT epoch-millisecond times, JSON documents as TEXT, flags
-- as BIGINT 0/1.

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX agents_by_workspace ON agents (workspace_id, id);

CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    number TEXT NOT NULL UNIQUE,
    region TEXT,
    agent_id TEXT REFERENCES agents (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX phone_numbers_by_workspace ON phone_numbers (workspace_id, id);

CREATE TABLE providers (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX providers_by_workspace ON providers (workspace_id, priority);

CREATE TABLE edges (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    sip_addr TEXT NOT NULL,
    rtp_addr TEXT NOT NULL,
    http_addr TEXT NOT NULL,
    version TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    active_calls BIGINT NOT NULL DEFAULT 0,
    cpu_permille BIGINT NOT NULL DEFAULT 0,
    draining BIGINT NOT NULL DEFAULT 0,
    registered_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    edge_id TEXT,
    direction TEXT NOT NULL,
    from_number TEXT,
    to_number TEXT,
    agent_id TEXT,
    status TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    answered_at_ms BIGINT,
    ended_at_ms BIGINT,
    end_reason TEXT
);
CREATE INDEX calls_by_workspace_time ON calls (workspace_id, started_at_ms);

CREATE TABLE call_events (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    edge_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    payload TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX call_events_by_call ON call_events (call_id, at_ms);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX audit_log_by_workspace_time ON audit_log (workspace_id, at_ms);

-- One row: the configuration version edges watch. Every change to what edges serve bumps it in
-- the same transaction, so every control-plane process can see that something moved.
CREATE TABLE config_state (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO config_state (id, version) VALUES (1, 1);
