-- When a call began ringing (its `call.ringing`: our 180, or the first 180 a call we placed
-- heard); NULL for a call that never rang and for calls recorded before this. Ring time is
-- `ringing_at_ms` to `answered_at_ms`, or to `ended_at_ms` for a call that never was answered.
ALTER TABLE calls ADD COLUMN ringing_at_ms BIGINT;

-- The agent's characters, split: those the caller heard (the transcript's agent lines without
-- the dash that marks a line cut off) and those sent to speech synthesis, which a provider bills
-- whether or not they were played (counted by the edge and written in `call.ended`; NULL when
-- the edge did not say, an older edge or a call not yet ended). `agent_characters` stays as it
-- was: the agent lines' characters, dashes included. Older calls count their played characters
-- as that.
ALTER TABLE calls ADD COLUMN agent_characters_played BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN agent_characters_synthesized BIGINT;
UPDATE calls SET agent_characters_played = agent_characters;
