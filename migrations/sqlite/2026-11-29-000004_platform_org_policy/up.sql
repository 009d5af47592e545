-- docs/spec.md §10: organization policies. No row: the defaults (no lifetime cap, members
-- create keys, leaked keys are revoked).
CREATE TABLE org_policies (
    org_id TEXT PRIMARY KEY NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    max_key_lifetime_days BIGINT,
    members_can_create_keys BOOLEAN NOT NULL DEFAULT 1,
    revoke_leaked_keys BOOLEAN NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);
