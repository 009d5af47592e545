-- Push of credential changes to every instance (docs/spec.md §12): each change that the
-- instances' poll looks for (startup::poll_credential_changes) also sends a NOTIFY on
-- `tessera_changes`, delivered when its transaction commits. Listeners (src/change_feed.rs)
-- then poll at once instead of waiting for the next tick. Written as triggers so that every
-- writer (server, CLI, another version) notifies.
CREATE FUNCTION tessera_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tessera_changes', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
CREATE TRIGGER audit_events_notify_change AFTER INSERT ON audit_events
  FOR EACH ROW WHEN (NEW.target_type IN ('api_key', 'client'))
  EXECUTE FUNCTION tessera_notify_change();
CREATE TRIGGER grants_notify_change AFTER UPDATE OF revoked_at ON grants
  FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
  EXECUTE FUNCTION tessera_notify_change();
CREATE TRIGGER revoked_jtis_notify_change AFTER INSERT ON revoked_jtis
  FOR EACH ROW EXECUTE FUNCTION tessera_notify_change();
