DROP TABLE open_registrations;
