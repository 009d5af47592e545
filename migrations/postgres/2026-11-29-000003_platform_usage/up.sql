-- docs/spec.md §10: requests per API key, UTC hour and verdict `code`, written in batches
-- by `usage::store::flush` (never one write per request) and pruned by the janitor after
-- `--usage-retention-days`. `org_id` is copied from the key so a report needs no join.
CREATE TABLE key_usage (
    org_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour_start, code)
);
CREATE INDEX key_usage_org_hour ON key_usage (org_id, hour_start);
CREATE INDEX key_usage_hour ON key_usage (hour_start);
