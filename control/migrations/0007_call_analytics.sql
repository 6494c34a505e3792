-- What a call used, folded in from its events as they arrive, so analytics sum columns instead
-- of reading every event: agent replies, the caller's speech sent to recognition, and the
-- characters the agent spoke.
ALTER TABLE calls ADD COLUMN agent_turns BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN caller_speech_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN agent_characters BIGINT NOT NULL DEFAULT 0;

-- Voice-to-voice latency of agent replies, pre-aggregated: per workspace, hour (of the call's
-- start), agent, number and region, a count of turns in each logarithmic latency bin. Percentiles
-- over any range are read from a few hundred rows per hour, not from every turn. Empty strings
-- stand for "none" so that the key is unique.
CREATE TABLE turn_latency_hourly (
    workspace_id TEXT NOT NULL,
    hour_ms BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    number TEXT NOT NULL,
    region TEXT NOT NULL,
    bin BIGINT NOT NULL,
    turns BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hour_ms, agent_id, number, region, bin)
);
