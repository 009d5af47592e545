-- RFC 7592: what a registration access token may grant on update is capped by what the
-- credential that registered the client could grant (docs/spec.md §3). NULL (clients
-- registered before this column, or not registered over RFC 7591): every catalogue scope
-- but admin.
ALTER TABLE clients ADD COLUMN registration_scope_ceiling TEXT;
