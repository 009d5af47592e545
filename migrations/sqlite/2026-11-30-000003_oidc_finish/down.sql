DROP INDEX device_codes_client_id_expires_at;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
