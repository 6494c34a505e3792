-- A join token may enrol several edges (up to `max_uses`, before it expires): one token in a
-- Kubernetes Secret serves a DaemonSet's nodes. Every token made before this is single-use,
-- and one already spent counts as used once. Expand only: a control plane of the previous
-- release reads neither column and keeps treating `used_at_ms` as spent.
ALTER TABLE edge_join_tokens ADD COLUMN max_uses BIGINT NOT NULL DEFAULT 1;
ALTER TABLE edge_join_tokens ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
UPDATE edge_join_tokens SET uses = 1 WHERE used_at_ms IS NOT NULL;
