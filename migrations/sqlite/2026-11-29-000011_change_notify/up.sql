-- PostgreSQL only (LISTEN/NOTIFY, docs/spec.md §12): SQLite instances share one file and
-- learn of changes by the poll. Kept so both backends have the same migration list.
SELECT 1;
