-- An outbound call waiting to be handed to an edge (its one retry on another edge): when it
-- started waiting (NULL: it is not waiting), and the lease of the control-plane process that
-- is handing it over. Any replica may take a lease that has run out (`placing_until_ms` in the
-- past), so a replica killed between taking it and sending the command leaves the call to
-- another one instead of queued forever; the edge the call goes to is its `edge_id` once it is
-- no longer one of `edge_attempts`. Expand only: a control plane of the previous release
-- names no such column and keeps working beside this one.
ALTER TABLE calls ADD COLUMN placing_since_ms BIGINT;
ALTER TABLE calls ADD COLUMN placing_holder TEXT;
ALTER TABLE calls ADD COLUMN placing_until_ms BIGINT;
CREATE INDEX calls_placing_since ON calls (placing_since_ms);
