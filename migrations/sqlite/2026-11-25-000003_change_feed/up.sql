-- Instances poll for credentials revoked elsewhere (api_keys::cache, tokens::cache).
CREATE INDEX audit_events_changes ON audit_events(target_type, created_at);
CREATE INDEX grants_revoked_at ON grants(revoked_at);
CREATE INDEX revoked_jtis_revoked_at ON revoked_jtis(revoked_at);
