-- The state of each registration an edge keeps with a PBX or trunk (providers set to register),
-- as its latest heartbeat reported it: a JSON array of
-- {"provider_id", "state", "expires_at_ms", "last_error"}. Read by `GET /v1/providers/{id}`
-- from edges still online. Expand only: a control plane of the previous release names no such
-- column and keeps working beside this one.
ALTER TABLE edges ADD COLUMN registrations TEXT;
