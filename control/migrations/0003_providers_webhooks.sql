-- Providers keep their credential sealed (ChaCha20-Poly1305 under auth.encryption_key) beside
-- the public part of their spec; a webhook delivery keeps retrying until its retry window closes
-- (a day after it was queued, or after a manual redelivery); the delivery log of a subscription
-- is read newest first; analytics read calls by workspace and start time (calls_by_workspace_time).

ALTER TABLE providers ADD COLUMN secret TEXT;

ALTER TABLE webhook_deliveries ADD COLUMN retry_until_ms BIGINT NOT NULL DEFAULT 0;

CREATE INDEX webhook_deliveries_log ON webhook_deliveries (workspace_id, webhook_id, id);
