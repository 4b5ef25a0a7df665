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

ALTER TABLE upstream_oauth_clients ADD COLUMN organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE;

UPDATE upstream_oauth_clients c SET organization_id = used.organization_id
FROM (
  SELECT oauth2_issuer, oauth2_client_id, min(organization_id) AS organization_id
  FROM mcp_servers
  WHERE auth_type = 'oauth2' AND oauth2_registration = 'dynamic'
  GROUP BY oauth2_issuer, oauth2_client_id
  HAVING count(DISTINCT organization_id) = 1
) used
WHERE used.oauth2_issuer = c.issuer AND used.oauth2_client_id = c.client_id;

DELETE FROM upstream_oauth_clients WHERE organization_id IS NULL;

ALTER TABLE upstream_oauth_clients ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE upstream_oauth_clients DROP CONSTRAINT upstream_oauth_clients_issuer_gatehouse_origin_key;

ALTER TABLE upstream_oauth_clients
  ADD CONSTRAINT upstream_oauth_clients_organization_issuer_origin_key UNIQUE (organization_id, issuer, gatehouse_origin);
