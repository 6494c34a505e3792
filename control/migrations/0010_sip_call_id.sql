-- A call's id is ours (UUIDv7, given by the edge); the SIP Call-ID its caller chose is only an
-- attribute, scoped by the edge (`edge_id`) and its dialog there, kept for finding the call in a
-- carrier's or a proxy's logs. Calls from before this have none: their id was the Call-ID.
ALTER TABLE calls ADD COLUMN sip_call_id TEXT;
