-- MCP-ready authorization (docs/spec.md §8): remembered consent names the RFC 8707
-- resources the user approved for the client (space-separated, sorted), so a remembered
-- consent without resource R never lets a code for R through without the consent page.
ALTER TABLE consents ADD COLUMN resources TEXT NOT NULL DEFAULT '';
