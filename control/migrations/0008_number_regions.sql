-- A phone number answers in its home region (`phone_numbers.region`) and in any further regions
-- listed here, one row per (number, region). A row table rather than a JSON column so that an
-- edge snapshot finds its region's numbers through the index on `region`, on every engine.
CREATE TABLE phone_number_regions (
    number_id TEXT NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    -- Where the region stands in the list the customer gave, so it reads back the same.
    position BIGINT NOT NULL,
    PRIMARY KEY (number_id, region)
);
CREATE INDEX phone_number_regions_by_region ON phone_number_regions (region, number_id);
CREATE INDEX phone_numbers_by_region ON phone_numbers (region);

-- The region of the edge that carried a call, kept on the call itself: an edge may later move
-- or be forgotten, and the call still happened where it happened. Calls from before this have
-- none; analytics falls back to their edge's current region (no backfill here: CockroachDB does
-- not let a transaction write a column it is still adding).
ALTER TABLE calls ADD COLUMN region TEXT;
