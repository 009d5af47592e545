-- private_key_jwt client authentication (RFC 7523 §2.2, docs/spec.md §8). A client that
-- registered a JWK set (`jwks`, its canonical JSON) or a `jwks_uri` authenticates with
-- signed assertions instead of a secret. Each assertion's `jti` is single use: one row per
-- (client, jti), keyed by the SHA-256 of both, kept until the assertion's `exp` (the
-- janitor then deletes it); the primary key decides a race between two uses.
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
CREATE TABLE client_assertion_jtis (
    jti_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);
