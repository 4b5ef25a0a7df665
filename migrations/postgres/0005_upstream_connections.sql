-- Per-user connections to OAuth upstreams: the pending authorizations (state, PKCE verifier),
-- and a lease on each user's tokens so one refresh runs at a time across processes.

CREATE TABLE mcp_oauth_states (
  state_hash TEXT NOT NULL PRIMARY KEY,
  server_id TEXT NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_verifier TEXT NOT NULL,
  return_to TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);

CREATE INDEX mcp_oauth_states_expires ON mcp_oauth_states (expires_at);

ALTER TABLE mcp_server_user_tokens ADD COLUMN refresh_lease_id TEXT;
ALTER TABLE mcp_server_user_tokens ADD COLUMN refresh_lease_until BIGINT;
