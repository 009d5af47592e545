ALTER TABLE clients DROP COLUMN registration_scope_ceiling;
