-- The cluster's certificate authority: one row (id = 1), made by whichever control-plane process
-- starts first (insert-if-absent; every process then reads the row back, so two replicas starting
-- at once end with one CA). The key is sealed under `auth.encryption_key` like other secrets.
CREATE TABLE cluster_trust (
    id BIGINT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    ca_certificate_pem TEXT NOT NULL,
    ca_key_sealed TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- One-time join tokens for new edges. Only the SHA-256 of the secret is kept; the token is shown
-- once, to the owner or admin who made it. `used_at_ms` is set by the one enrolment that spends it.
CREATE TABLE edge_join_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    used_by_edge TEXT
);

-- Every certificate the CA issued to an edge (serial as lowercase hex).
CREATE TABLE edge_certificates (
    serial TEXT PRIMARY KEY,
    edge_id TEXT NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    not_after_ms BIGINT NOT NULL
);
CREATE INDEX edge_certificates_by_edge ON edge_certificates (edge_id);

-- Serials no longer accepted, though not yet expired. Every control-plane process reads it.
CREATE TABLE revoked_certificates (
    serial TEXT PRIMARY KEY,
    edge_id TEXT NOT NULL,
    revoked_at_ms BIGINT NOT NULL
);

-- What happened to the cluster's trust: tokens made, enrolments taken or refused, renewals,
-- revocations, refused TLS handshakes. Cluster-wide, so not in a workspace's audit log (a refused
-- enrolment may name no workspace at all).
CREATE TABLE trust_audit (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    edge_id TEXT,
    token_id TEXT,
    source_ip TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX trust_audit_by_time ON trust_audit (at_ms);
