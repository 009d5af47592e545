-- RFC 8707 resource indicators (docs/spec.md §8). Each resource URI belongs to exactly one
-- resource server (the primary key); pending authorization requests and grants remember
-- the resources they were asked for (space-separated; URIs never contain a space), so that
-- codes and refresh tokens of a grant can be exchanged for tokens meant for them.
CREATE TABLE client_resources (
    uri TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE
);
CREATE INDEX client_resources_client_id ON client_resources (client_id);
-- The same URIs, for showing the client (client_resources decides ownership).
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_authorizations ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN resource TEXT NOT NULL DEFAULT '';
