ALTER TABLE grants DROP COLUMN auth_time;
ALTER TABLE authorization_codes DROP COLUMN auth_time;
ALTER TABLE authorization_codes DROP COLUMN nonce;
ALTER TABLE pending_authorizations DROP COLUMN auth_time;
ALTER TABLE pending_authorizations DROP COLUMN nonce;
ALTER TABLE users DROP COLUMN name;
DELETE FROM signing_keys WHERE purpose <> 'access';
ALTER TABLE signing_keys DROP COLUMN purpose;
