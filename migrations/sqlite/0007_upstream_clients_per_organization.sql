-- Clients Gatehouse registered at upstream authorization servers belong to one organization:
-- servers behind one authorization server share a client only within their organization, so no
-- organization's admin is handed the client credentials another organization's users rely on,
-- and adding a callback (RFC 7592) never changes another organization's client.
--
-- A kept registration goes to the organization of the servers that use it (discovered, with its
-- issuer and client ID). One that servers of several organizations use, or that no server uses,
-- is forgotten rather than handed to any one organization: the servers keep the client they hold,
-- and the next discovery in each organization registers a client of its own. Rows keep their IDs,
-- which their sealed secrets are bound to.

CREATE TABLE upstream_oauth_clients_per_organization (
  id TEXT NOT NULL PRIMARY KEY,
  organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
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
  UNIQUE (organization_id, issuer, gatehouse_origin)
) STRICT;

INSERT INTO upstream_oauth_clients_per_organization (
  id, organization_id, issuer, gatehouse_origin, client_id, client_secret, token_endpoint_auth_method,
  redirect_uris, registration_client_uri, registration_access_token, client_secret_expires_at, created_at, updated_at
)
SELECT
  c.id, used.organization_id, c.issuer, c.gatehouse_origin, c.client_id, c.client_secret, c.token_endpoint_auth_method,
  c.redirect_uris, c.registration_client_uri, c.registration_access_token, c.client_secret_expires_at, c.created_at, c.updated_at
FROM upstream_oauth_clients c
JOIN (
  SELECT oauth2_issuer, oauth2_client_id, min(organization_id) AS organization_id
  FROM mcp_servers
  WHERE auth_type = 'oauth2' AND oauth2_registration = 'dynamic'
  GROUP BY oauth2_issuer, oauth2_client_id
  HAVING count(DISTINCT organization_id) = 1
) used ON used.oauth2_issuer = c.issuer AND used.oauth2_client_id = c.client_id;

DROP TABLE upstream_oauth_clients;

ALTER TABLE upstream_oauth_clients_per_organization RENAME TO upstream_oauth_clients;
