-- The call's OpenTelemetry trace id (32 hex digits), written by its edge in `call.started` (or
-- `call.answered` for a call whose trace began at the answer), so an operator goes from a call's
-- record to its trace. Calls from before this, or from an edge without it, have none.
ALTER TABLE calls ADD COLUMN trace_id TEXT;
-- The id of the call's root span (16 hex digits): webhook deliveries of the call's events are
-- traced as its children.
ALTER TABLE calls ADD COLUMN trace_span_id TEXT;
