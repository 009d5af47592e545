-- RFC 8628 device authorization grant (docs/spec.md §9). The device code and the user
-- code are stored as SHA-256 only. `status`: pending, approved, denied, issued. `poll_interval`
-- grows by 5 s on every `slow_down` (RFC 8628 §3.5); `polled_at` is the last accepted poll.
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth_time BIGINT,
    poll_interval BIGINT NOT NULL,
    polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_codes_expires_at ON device_codes (expires_at);
