-- The region of the edge that wrote each call event, as `calls.region` holds the region of the
-- edge that took the call: a multi-region CockroachDB keeps each event's row in its home region
-- by it (deploy/cockroachdb/, REGIONAL BY ROW). NULL for events stored before this migration
-- and for an edge that never registered. Expand only: a control plane of the previous release
-- does not name the column and keeps working beside this one.
ALTER TABLE call_events ADD COLUMN region TEXT;
