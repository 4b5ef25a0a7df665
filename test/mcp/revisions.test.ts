// Every protocol revision the endpoint serves, each spoken by the official SDK client pinned to it:
// the three stateless 2025 revisions and 2026-07-28.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test'
import {
  closeClients,
  connectClient,
  pinRevision,
  REVISIONS,
  startMcpServer,
  textJson,
  type McpServer,
} from './support-mcp-server.ts'

describe('MCP protocol revisions', () => {
  let server: McpServer
  beforeAll(async () => {
    server = await startMcpServer()
  })
  afterEach(async () => {
    await closeClients()
  })
  afterAll(async () => {
    await server.close()
  })

  for (const revision of REVISIONS) {
    it(`connects, lists the tools and calls one on ${revision}`, async () => {
      const client = await connectClient(server.url, server.owner.token, pinRevision(revision))
      expect(client.getNegotiatedProtocolVersion()).toBe(revision)
      expect(client.getServerVersion()?.name).toBe('gatehouse')

      const { tools } = await client.listTools()
      expect(tools.map((tool) => tool.name)).toEqual(
        expect.arrayContaining([
          'get_authenticated_user',
          'list_organizations',
          'list_authorized_apps',
          'revoke_authorized_app',
          'list_users',
        ]),
      )

      const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
      expect(result.isError).toBeFalsy()
      expect(textJson(result)).toMatchObject({ id: server.owner.id, username: 'owner', roles: ['owner'] })
      expect(result.structuredContent).toEqual(textJson(result))
    })
  }
})
