-- Refresh-token lineage: which token a refresh token was issued for, and when a retry within the
-- grace window replaced it. A superseded token, or the predecessor of a used one, presented
-- again is reuse and revokes the grant.
ALTER TABLE oauth_refresh_tokens ADD COLUMN parent_hash TEXT;
ALTER TABLE oauth_refresh_tokens ADD COLUMN superseded_at BIGINT;
