-- Each edge's cluster gossip address as it registered: a new edge is handed its peers' addresses
-- by whichever control-plane replica it registers with, including edges registered with
-- another replica (in another region). Expand only: the previous release neither writes nor
-- reads it.
ALTER TABLE edges ADD COLUMN gossip_addr TEXT;
