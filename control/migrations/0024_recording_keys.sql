-- The recording keypairs edges seal their recording spools to (`recording_spool.rs` in
-- freya-shared). The newest row's public key is in every edge's configuration snapshot; every
-- row's private key is kept (sealed with `auth.encryption_key`, for the row
-- `recording_key:<id>`, re-sealed by `freya secrets rotate-key`) so that spools sealed before a
-- rotation still open. The id is the public key itself, 64 hex characters. Expand only: a
-- control plane of the previous release names no such table and keeps working beside this one.
CREATE TABLE recording_keys (
    id TEXT PRIMARY KEY,
    private_key_sealed TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
