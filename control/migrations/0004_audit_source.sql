-- Where each audited change came from (the client's IP address as the control plane saw it);
-- NULL for changes made by the system itself.
ALTER TABLE audit_log ADD COLUMN source_ip TEXT;
