-- OpenID Connect (docs/spec.md §9): a client's registered post-logout redirect URIs
-- (RP-Initiated Logout 1.0 §3, a JSON array of strings) and the algorithm its ID tokens
-- are signed with (OpenID Connect Dynamic Client Registration 1.0 §2
-- `id_token_signed_response_alg`: RS256, ES256 or EdDSA).
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
-- RFC 8628 (docs/spec.md §9): the device authorization endpoint counts a client's waiting
-- codes (oauth::device::MAX_WAITING_PER_CLIENT).
CREATE INDEX device_codes_client_id_expires_at ON device_codes (client_id, expires_at);
