-- Timed work that one control-plane process at a time does, when several replicas share this
-- database (today: ending the calls of edges that stopped heartbeating). The process holding a
-- row's lease does the work and renews it while it runs; another takes the row over once the
-- lease has run out, so a killed holder is replaced within one lease. A lease in a row, not an
-- advisory lock: CockroachDB has none, and a dead holder's lease simply expires.
CREATE TABLE timer_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
