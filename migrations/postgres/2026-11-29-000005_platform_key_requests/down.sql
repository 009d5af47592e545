DROP TABLE key_requests;
