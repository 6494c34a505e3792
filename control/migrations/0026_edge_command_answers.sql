-- The answer an edge gave to a command that asks for one (a `TestTrunk`), for the request
-- waiting on another control-plane replica than the one holding the edge's stream: the replica
-- that receives the answer writes it here (`answer`, the protobuf answer hex-encoded like
-- `command`, at most 16 KiB; `answered_ms`), once, and the waiting request reads it. Expand
-- only: a control plane of the previous release names neither column.
ALTER TABLE edge_commands ADD COLUMN answer TEXT;
ALTER TABLE edge_commands ADD COLUMN answered_ms BIGINT;
