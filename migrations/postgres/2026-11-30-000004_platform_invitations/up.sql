-- docs/spec.md §5: invitations. An admin invites an email with a role; the invitee joins
-- only by accepting (`accepted_at`), or declines (`declined_at`); an admin may revoke a
-- pending one (`revoked_at`). The link's token is stored as SHA-256 only (`token_hash`);
-- a pending invitation is one with none of the three set and `expires_at` in the future.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT,
    declined_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX invitations_org ON invitations (org_id, created_at);
CREATE INDEX invitations_email ON invitations (email);
