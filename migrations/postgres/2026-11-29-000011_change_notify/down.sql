DROP TRIGGER revoked_jtis_notify_change ON revoked_jtis;
DROP TRIGGER grants_notify_change ON grants;
DROP TRIGGER audit_events_notify_change ON audit_events;
DROP FUNCTION tessera_notify_change();
