-- Adding a region to a Freya database already made multi-region by multi-region.sql, before
-- the new region's edges start (deploy/README.md, "Adding a region"). EDIT the names: here
-- Freya region `ap-south` on CockroachDB region "asia-south1".
ALTER DATABASE freya ADD REGION "asia-south1";

-- The per-call tables' mapping gains the new region. A computed column's expression is not
-- edited in place: a new column with the new mapping takes over (CockroachDB moves each
-- row to its home region online), then the old one goes. Repeat for each table of step 4 of
-- multi-region.sql: calls, call_events, turn_latency_hourly, edges.
ALTER TABLE calls ADD COLUMN crdb_region_2 crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE region WHEN 'us-east' THEN 'us-east1' WHEN 'eu-west' THEN 'europe-west1'
    WHEN 'ap-south' THEN 'asia-south1' ELSE 'us-east1' END) STORED;
ALTER TABLE calls SET LOCALITY REGIONAL BY ROW AS crdb_region_2;
ALTER TABLE calls DROP COLUMN crdb_region;
