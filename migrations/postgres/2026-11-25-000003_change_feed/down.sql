DROP INDEX revoked_jtis_revoked_at;
DROP INDEX grants_revoked_at;
DROP INDEX audit_events_changes;
