-- SECURITY.md B7: finding an earlier use of a PKCE challenge by the same client is an indexed lookup.
CREATE INDEX authorization_codes_client_challenge ON authorization_codes(client_id, code_challenge);
