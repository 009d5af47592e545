-- OpenID Connect (docs/spec.md §9).
-- ID tokens are signed by their own keys (one lane per algorithm, RS256 by default) beside
-- the access-token key. Existing keys sign access tokens.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';
-- The display name (`name` claim with the `profile` scope); NULL until the person sets one.
ALTER TABLE users ADD COLUMN name TEXT;
-- The request's `nonce` and when the person signed in, carried from the authorization
-- request through consent and the code into the ID token; the grant keeps `auth_time` for
-- the ID tokens of refreshes (OpenID Connect Core §12.2).
ALTER TABLE pending_authorizations ADD COLUMN nonce TEXT;
ALTER TABLE pending_authorizations ADD COLUMN auth_time BIGINT;
ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
ALTER TABLE authorization_codes ADD COLUMN auth_time BIGINT;
ALTER TABLE grants ADD COLUMN auth_time BIGINT;
