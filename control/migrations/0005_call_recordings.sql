-- A call's recording, once an edge has uploaded it: the file lives under the control plane's
-- `recordings.dir` as `<workspace_id>/<recording_id>.wav`; NULL columns mean no recording.
ALTER TABLE calls ADD COLUMN recording_id TEXT;
ALTER TABLE calls ADD COLUMN recording_format TEXT;
ALTER TABLE calls ADD COLUMN recording_bytes BIGINT;
ALTER TABLE calls ADD COLUMN recording_duration_ms BIGINT;
ALTER TABLE calls ADD COLUMN recording_sha256 TEXT;
