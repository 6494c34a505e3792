-- The edges that could not place an outbound call, in order, and why: a JSON array of
-- {"edge_id", "reason"} from their `call.failed` (`placement: edge`). NULL while no edge has
-- failed the call. Set once, atomically (`... WHERE edge_attempts IS NULL`), by the delivery
-- that claims the call's one retry on another edge, so several control-plane replicas place it
-- again once. Expand only: a control plane of the previous release names no such column and
-- keeps working beside this one.
ALTER TABLE calls ADD COLUMN edge_attempts TEXT;
