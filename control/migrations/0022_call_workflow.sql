-- The workflow (and its published version) that answered a call, as its `call.started` said:
-- the event store redacts a workflow call's later events by that flow's `privacy` and its
-- agent nodes' agents' (`store/call_privacy.rs`). Expand only: the previous release neither
-- writes nor reads them.
ALTER TABLE calls ADD COLUMN workflow_id TEXT;
ALTER TABLE calls ADD COLUMN workflow_version BIGINT;
