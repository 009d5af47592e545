ALTER TABLE clients DROP COLUMN resources;
ALTER TABLE grants DROP COLUMN resource;
ALTER TABLE pending_authorizations DROP COLUMN resource;
DROP INDEX client_resources_client_id;
DROP TABLE client_resources;
