DROP INDEX audit_events_changes;
