-- docs/spec.md §10: key requests. A member asks (pending), an admin approves or denies,
-- the requester claims the key exactly once (claimed; `key_id` names it). The key's
-- expiry counts from `decided_at` (the approval).
CREATE TABLE key_requests (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    requested_by TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    reason TEXT NOT NULL,
    expires_in_days BIGINT,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    key_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX key_requests_org ON key_requests (org_id, created_at);
