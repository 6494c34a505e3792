-- Phone numbers are unique by their normal form (E.164 with its `+`, or a SIP name as written):
-- the edge routes by that form, so two spellings of one number must never belong to two
-- workspaces. Rows written before this are rewritten into the normal form at start-up
-- (`control/src/store/number_forms.rs`); rows whose normal form is claimed more than once, or
-- that are no number at all, are marked here instead of being rewritten, and no edge routes
-- them until a customer changes or deletes one: the migration never picks a winner.
ALTER TABLE phone_numbers ADD COLUMN normal_form_conflict BIGINT NOT NULL DEFAULT 0;

-- Data migrations done in code rather than SQL, by name, each once.
CREATE TABLE data_migrations (
    name TEXT PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL
);
