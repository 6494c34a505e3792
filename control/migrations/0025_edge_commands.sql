-- Commands for an edge whose command stream is open to another control-plane replica than the
-- one that served the request (a hang-up, a leg command, a drain, a certificate renewal). The
-- replica holding that edge's stream sends each row under a lease (`holder`, `until_ms`: a
-- guarded UPDATE, like `timer_leases` and `calls.placing_*`), so a replica killed between
-- taking a row and marking it sent leaves it to the next holder instead of lost; a row not
-- sent by `expires_ms` is never sent. `done_ms` and `outcome` close a row: `sent`, `moot` (its
-- call had ended), `expired` or `withdrawn` (the request stopped waiting before any replica
-- took it). Closed rows are deleted after a while. `command` is the protobuf `EdgeCommand`,
-- hex-encoded so both engines store it as text. Expand only: a control plane of the previous
-- release never reads this table.
CREATE TABLE edge_commands (
    id TEXT PRIMARY KEY,
    edge_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    command TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    holder TEXT,
    until_ms BIGINT,
    done_ms BIGINT,
    outcome TEXT
);
CREATE INDEX edge_commands_open ON edge_commands (edge_id, done_ms);
CREATE INDEX edge_commands_created ON edge_commands (created_ms);
