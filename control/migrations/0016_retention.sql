-- Retention and erasure of call data. `calls.erased_at_ms` marks a call whose transcript,
-- content-bearing events and recording were erased on request: the row stays as a tombstone
-- (times, outcome) with the remote party's number and SIP Call-ID cleared. The workspace's
-- retention windows, in days (NULL keeps forever), are enforced by the control plane's
-- retention job. Expand only: a control plane of the previous release names none of these
-- columns and keeps working beside this one.
ALTER TABLE calls ADD COLUMN erased_at_ms BIGINT;
ALTER TABLE workspaces ADD COLUMN retention_recordings_days BIGINT;
ALTER TABLE workspaces ADD COLUMN retention_transcripts_days BIGINT;
ALTER TABLE workspaces ADD COLUMN retention_calls_days BIGINT;
