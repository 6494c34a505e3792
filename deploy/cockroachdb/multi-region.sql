-- Freya on a multi-region CockroachDB cluster: run once, as an admin, on a database that
-- `freya migrate` has created (deploy/cockroachdb/README.md says when and how). Edit the three
-- marked places first: the regions, and the mapping from Freya's region names (the edges'
-- `region`) to CockroachDB's (the nodes' --locality=region=...).
--
--   cockroach sql --url "$ADMIN_URL" --database freya -f deploy/cockroachdb/multi-region.sql
--
-- Every table of control/migrations is named below (deploy/check_recipes.py checks it), so a
-- new table cannot silently stay in the primary region.

-- 1. Regions (EDIT). The primary region holds the tables that have no better home.
ALTER DATABASE freya SET PRIMARY REGION "us-east1";
ALTER DATABASE freya ADD REGION "europe-west1";

-- 2. Survival goal: ZONE (the default) keeps three replicas of a row in its home region and
-- survives the loss of one availability zone there, with writes committed inside the region.
-- With three or more regions, `SURVIVE REGION FAILURE` survives a whole region's loss at the
-- price of a cross-region round trip on every write (README.md, "Survival goals").
ALTER DATABASE freya SURVIVE ZONE FAILURE;

-- 3. Configuration: read by every control plane for every snapshot, API call and login,
-- written rarely. GLOBAL tables answer reads in every region without a cross-region trip;
-- a write waits a few hundred milliseconds, which a configuration change can afford.
ALTER TABLE workspaces SET LOCALITY GLOBAL;
ALTER TABLE users SET LOCALITY GLOBAL;
ALTER TABLE memberships SET LOCALITY GLOBAL;
ALTER TABLE api_keys SET LOCALITY GLOBAL;
ALTER TABLE agents SET LOCALITY GLOBAL;
ALTER TABLE phone_numbers SET LOCALITY GLOBAL;
ALTER TABLE phone_number_regions SET LOCALITY GLOBAL;
ALTER TABLE providers SET LOCALITY GLOBAL;
ALTER TABLE webhooks SET LOCALITY GLOBAL;
ALTER TABLE workflows SET LOCALITY GLOBAL;
ALTER TABLE workflow_versions SET LOCALITY GLOBAL;
ALTER TABLE config_state SET LOCALITY GLOBAL;
-- The cluster's trust: its CA, the certificates it issued and revoked, and join tokens. Read at
-- every edge handshake and revocation poll in every region, written rarely.
ALTER TABLE cluster_trust SET LOCALITY GLOBAL;
ALTER TABLE edge_certificates SET LOCALITY GLOBAL;
ALTER TABLE revoked_certificates SET LOCALITY GLOBAL;
ALTER TABLE edge_join_tokens SET LOCALITY GLOBAL;
-- Which secrets-key rotations ran and finished (`freya secrets rotate-key`): written by one
-- command at a time, read rarely.
ALTER TABLE secret_key_rotations SET LOCALITY GLOBAL;
-- The recording keypair (public half in every edge's snapshot, private halves sealed): read for
-- every snapshot and every sealed recording that arrives, written at a rotation.
ALTER TABLE recording_keys SET LOCALITY GLOBAL;

-- 4. Per-call tables: each row lives in the region of the edge that took the call. Freya
-- stores that edge's region with the row (`region`, filled from the registering edge); a
-- hidden computed column turns it into a CockroachDB region (EDIT the mapping: one WHEN per
-- Freya region, and the ELSE, for rows without a region, names the primary region).
ALTER TABLE calls ADD COLUMN crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE region WHEN 'us-east' THEN 'us-east1' WHEN 'eu-west' THEN 'europe-west1'
    ELSE 'us-east1' END) STORED;
ALTER TABLE calls SET LOCALITY REGIONAL BY ROW AS crdb_region;

ALTER TABLE call_events ADD COLUMN crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE region WHEN 'us-east' THEN 'us-east1' WHEN 'eu-west' THEN 'europe-west1'
    ELSE 'us-east1' END) STORED;
ALTER TABLE call_events SET LOCALITY REGIONAL BY ROW AS crdb_region;

ALTER TABLE turn_latency_hourly ADD COLUMN crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE region WHEN 'us-east' THEN 'us-east1' WHEN 'eu-west' THEN 'europe-west1'
    ELSE 'us-east1' END) STORED;
ALTER TABLE turn_latency_hourly SET LOCALITY REGIONAL BY ROW AS crdb_region;

-- Edges heartbeat every two seconds: each edge's row at home.
ALTER TABLE edges ADD COLUMN crdb_region crdb_internal_region NOT VISIBLE NOT NULL AS (
    CASE region WHEN 'us-east' THEN 'us-east1' WHEN 'eu-west' THEN 'europe-west1'
    ELSE 'us-east1' END) STORED;
ALTER TABLE edges SET LOCALITY REGIONAL BY ROW AS crdb_region;

-- 5. Written per request or per event without a region of their own: each row where the
-- control plane that wrote it runs (CockroachDB's hidden crdb_region, gateway_region()).
ALTER TABLE webhook_deliveries SET LOCALITY REGIONAL BY ROW;
ALTER TABLE audit_log SET LOCALITY REGIONAL BY ROW;
ALTER TABLE idempotency_keys SET LOCALITY REGIONAL BY ROW;
ALTER TABLE trust_audit SET LOCALITY REGIONAL BY ROW;

-- 6. Bookkeeping, touched at start-up only: the primary region.
ALTER TABLE data_migrations SET LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
-- The lease one control-plane replica holds to run the lost-edge pass: a few writes a minute
-- from whichever replica holds it.
ALTER TABLE timer_leases SET LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
-- Commands queued for an edge whose stream another replica holds: written by the replica that
-- served the request, polled by the holder, wherever each runs; rare (most commands go straight
-- down the stream) and short-lived, so one home beats rows spread over regions every poll reads.
ALTER TABLE edge_commands SET LOCALITY REGIONAL BY TABLE IN PRIMARY REGION;
