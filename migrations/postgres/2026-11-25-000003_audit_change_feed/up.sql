-- Instances poll the audit log for API keys changed elsewhere (api_keys::cache).
CREATE INDEX audit_events_changes ON audit_events(target_type, created_at);
