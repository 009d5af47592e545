-- MCP-ready authorization (docs/spec.md §8): clients registered without a credential
-- (`--registration open`). One row per such registration: the client it made (no foreign
-- key: the row outlives a deleted client for the rate limit's hour) and the registering
-- IP, for the per-IP limit (10 per hour) and the janitor's idle-client deletion.
CREATE TABLE open_registrations (
    client_id TEXT PRIMARY KEY NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX open_registrations_ip_created_at ON open_registrations (ip, created_at);
