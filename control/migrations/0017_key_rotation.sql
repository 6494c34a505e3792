-- Rotating the secrets key and the cluster CA. Expand only: a control plane of the previous
-- release names none of these and keeps working beside this one.
--
-- Each sealed value names the key that sealed it inside its own text (`v2:<key id>:...`; agents'
-- secrets live inside their spec documents, where no column could carry it). This table records
-- each rotation to a key: when it started, when it finished and how many values it re-sealed over
-- all its runs, so that a rotation stopped half-way is seen, and re-run, as unfinished.
CREATE TABLE secret_key_rotations (
    target_key_id TEXT PRIMARY KEY,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    resealed BIGINT NOT NULL
);

-- The cluster CA becomes a short list: row 1 is the CA the cluster was made with, each rotation
-- adds the next id. Every row without `retired_at_ms` is trusted; the newest issues certificates;
-- retiring sets `retired_at_ms` and blanks the key. The cluster secret (gossip seals, stream
-- tickets) must outlive the CA it was first derived from: rows after the first keep it sealed
-- here (NULL on row 1, where it is still derived from that CA's key).
ALTER TABLE cluster_trust ADD COLUMN retired_at_ms BIGINT;
ALTER TABLE cluster_trust ADD COLUMN cluster_secret_sealed TEXT;
