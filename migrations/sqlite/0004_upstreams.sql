-- Upstream MCP servers registered by admins, and what each user keeps for them. Secrets live in
-- the columns of the rows that own them, sealed (`<key id>:<ciphertext>`, AES-256-GCM bound to
-- table, column and row), so they go with their row. The standalone secrets table goes.

DROP TABLE secrets;

CREATE TABLE mcp_servers (
  id TEXT NOT NULL PRIMARY KEY,
  organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  display_name TEXT NOT NULL,
  slug TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 32 AND slug NOT GLOB '*[^a-z0-9-]*'),
  description TEXT NOT NULL DEFAULT '',
  icon_url TEXT NOT NULL DEFAULT '',
  transport TEXT NOT NULL CHECK (transport IN ('streamable_http', 'sse')),
  url TEXT NOT NULL,
  auth_type TEXT NOT NULL CHECK (auth_type IN ('none', 'oauth2', 'api_key', 'custom_headers', 'user_oidc')),
  oauth2_client_id TEXT NOT NULL DEFAULT '',
  oauth2_client_secret TEXT,
  oauth2_auth_url TEXT NOT NULL DEFAULT '',
  oauth2_token_url TEXT NOT NULL DEFAULT '',
  oauth2_scopes TEXT NOT NULL DEFAULT '',
  oauth2_token_auth_method TEXT NOT NULL DEFAULT '',
  oauth2_issuer TEXT NOT NULL DEFAULT '',
  oauth2_iss_required INTEGER NOT NULL DEFAULT 0 CHECK (oauth2_iss_required IN (0, 1)),
  oauth2_revocation_url TEXT NOT NULL DEFAULT '',
  oauth2_resource TEXT NOT NULL DEFAULT '',
  oauth2_registration TEXT NOT NULL DEFAULT 'manual' CHECK (oauth2_registration IN ('manual', 'dynamic', 'metadata_document')),
  api_key_header TEXT NOT NULL DEFAULT '',
  api_key_value TEXT,
  custom_headers TEXT,
  tool_allow_list TEXT NOT NULL DEFAULT '[]',
  tool_deny_list TEXT NOT NULL DEFAULT '[]',
  availability TEXT NOT NULL CHECK (availability IN ('force_on', 'default_on', 'default_off')),
  enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
  forward_identity_headers INTEGER NOT NULL DEFAULT 0 CHECK (forward_identity_headers IN (0, 1)),
  created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
  updated_by TEXT REFERENCES users (id) ON DELETE SET NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX mcp_servers_organization ON mcp_servers (organization_id);

-- A user's own upstream OAuth tokens for a server.
CREATE TABLE mcp_server_user_tokens (
  server_id TEXT NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  access_token TEXT NOT NULL,
  refresh_token TEXT,
  token_type TEXT NOT NULL DEFAULT 'Bearer',
  expires_at INTEGER,
  scopes TEXT NOT NULL DEFAULT '',
  needs_reauth INTEGER NOT NULL DEFAULT 0 CHECK (needs_reauth IN (0, 1)),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (server_id, user_id)
) STRICT;

CREATE INDEX mcp_server_user_tokens_user ON mcp_server_user_tokens (user_id);

-- A user's choice to include (default_off) or leave out (default_on) a server in /mcp.
CREATE TABLE mcp_server_selections (
  server_id TEXT NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  selected INTEGER NOT NULL CHECK (selected IN (0, 1)),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (server_id, user_id)
) STRICT;

CREATE INDEX mcp_server_selections_user ON mcp_server_selections (user_id);

-- Clients Gatehouse registered at upstream authorization servers (RFC 7591), one per issuer and
-- Gatehouse origin, so servers behind one authorization server share it.
CREATE TABLE upstream_oauth_clients (
  id TEXT NOT NULL PRIMARY KEY,
  issuer TEXT NOT NULL,
  gatehouse_origin TEXT NOT NULL,
  client_id TEXT NOT NULL,
  client_secret TEXT,
  token_endpoint_auth_method TEXT NOT NULL,
  redirect_uris TEXT NOT NULL,
  registration_client_uri TEXT,
  registration_access_token TEXT,
  client_secret_expires_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (issuer, gatehouse_origin)
) STRICT;
