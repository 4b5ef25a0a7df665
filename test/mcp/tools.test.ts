// The tools themselves, through the official SDK client on 2025-06-18: what each returns for whom,
// and what revoking an app through MCP does to that app's access.

import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import type { Client } from '@modelcontextprotocol/client'
import {
  closeClients,
  connectClient,
  pinRevision,
  postMcp,
  rpc,
  startMcpServer,
  textOf,
  type McpServer,
} from './support-mcp-server.ts'

describe('MCP tools', () => {
  let server: McpServer
  beforeEach(async () => {
    server = await startMcpServer()
  })
  afterEach(async () => {
    await closeClients()
    await server.close()
  })

  const connect = (token: string) => connectClient(server.url, token, pinRevision('2025-06-18'))

  async function structured(client: Client, name: string, args: Record<string, unknown> = {}): Promise<any> {
    const result = await client.callTool({ name, arguments: args })
    if (result.isError) throw new Error(`${name}: ${textOf(result)}`)
    return result.structuredContent
  }

  describe('list_organizations', () => {
    it('lists the default organization with the role admin for the owner', async () => {
      const { organizations } = await structured(await connect(server.owner.token), 'list_organizations')
      expect(organizations).toHaveLength(1)
      expect(organizations[0]).toMatchObject({ is_default: true, role: 'admin' })
    })

    it('lists the default organization with the role member for a member', async () => {
      const member = await server.createUser('bob')
      const { organizations } = await structured(await connect(member.token), 'list_organizations')
      expect(organizations).toHaveLength(1)
      expect(organizations[0]).toMatchObject({ is_default: true, role: 'member' })
    })

    it('lists the same organization get_authenticated_user names', async () => {
      const client = await connect(server.owner.token)
      const { organizations } = await structured(client, 'list_organizations')
      const user = await structured(client, 'get_authenticated_user')
      expect(user.organization_ids).toEqual([organizations[0].id])
    })
  })

  describe('list_authorized_apps and revoke_authorized_app', () => {
    it('lists an app the user authorized through OAuth', async () => {
      const { client } = await server.oauthToken(server.owner.token, { scope: 'mcp' })
      const { apps } = await structured(await connect(server.owner.token), 'list_authorized_apps')
      expect(apps).toEqual([
        expect.objectContaining({ client_id: client.client_id, client_name: 'Test client', scope: 'mcp' }),
      ])
    })

    it('lists no apps for a user who authorized none', async () => {
      expect(await structured(await connect(server.owner.token), 'list_authorized_apps')).toEqual({ apps: [] })
    })

    it("revokes an app, after which the app's token gets 401 on /mcp and the app is no longer listed", async () => {
      const { client, tokens } = await server.oauthToken(server.owner.token)
      expect((await postMcp(server.url, tokens.access_token, rpc('tools/list'))).status).toBe(200)

      const mcp = await connect(server.owner.token)
      expect(await structured(mcp, 'revoke_authorized_app', { client_id: client.client_id })).toEqual({
        revoked: true,
        client_id: client.client_id,
      })
      expect((await postMcp(server.url, tokens.access_token, rpc('tools/list'))).status).toBe(401)
      expect(await structured(mcp, 'list_authorized_apps')).toEqual({ apps: [] })
    })

    it('lets an app revoke its own access with its own token', async () => {
      const { client, tokens } = await server.oauthToken(server.owner.token)
      const mcp = await connect(tokens.access_token)
      expect(await structured(mcp, 'revoke_authorized_app', { client_id: client.client_id })).toMatchObject({
        revoked: true,
      })
      expect((await postMcp(server.url, tokens.access_token, rpc('tools/list'))).status).toBe(401)
    })

    it('answers revoking an unknown client_id with an error result', async () => {
      const result = await (await connect(server.owner.token)).callTool({
        name: 'revoke_authorized_app',
        arguments: { client_id: 'no-such-app' },
      })
      expect(result.isError).toBe(true)
      expect(textOf(result)).toContain('no-such-app')
    })

    it("does not revoke another user's authorization of the same app", async () => {
      const { client, tokens } = await server.oauthToken(server.owner.token)
      const member = await server.createUser('bob')
      const result = await (await connect(member.token)).callTool({
        name: 'revoke_authorized_app',
        arguments: { client_id: client.client_id },
      })
      expect(result.isError).toBe(true)
      expect((await postMcp(server.url, tokens.access_token, rpc('tools/list'))).status).toBe(200)
    })
  })

  describe('list_users', () => {
    it('lists the users of an admin a page at a time, sorted by username', async () => {
      const admin = await server.createUser('alice', 'admin')
      await server.createUser('bob')
      await server.createUser('carol')
      const client = await connect(admin.token)

      const first = await structured(client, 'list_users', { limit: 1 })
      expect(first.users.map((user: { username: string }) => user.username)).toEqual(['alice'])
      expect(first.next_after).toBe('alice')

      const second = await structured(client, 'list_users', { limit: 2, after: first.next_after })
      expect(second.users.map((user: { username: string }) => user.username)).toEqual(['bob', 'carol'])
      expect(second.next_after).toBe('carol')

      const last = await structured(client, 'list_users', { limit: 2, after: second.next_after })
      expect(last.users.map((user: { username: string }) => user.username)).toEqual(['owner'])
      expect(last.next_after).toBeNull()
    })

    it('describes each listed user with their role and status', async () => {
      await server.createUser('bob')
      const { users } = await structured(await connect(server.owner.token), 'list_users')
      expect(users).toEqual([
        expect.objectContaining({ username: 'bob', email: 'bob@example.com', roles: ['member'], status: 'active' }),
        expect.objectContaining({ username: 'owner', email: 'owner@example.com', roles: ['owner'], status: 'active' }),
      ])
    })
  })

  describe('get_authenticated_user', () => {
    it('shows the role member for a member', async () => {
      const member = await server.createUser('bob')
      const user = await structured(await connect(member.token), 'get_authenticated_user')
      expect(user).toMatchObject({
        id: member.id,
        username: 'bob',
        email: 'bob@example.com',
        roles: ['member'],
        status: 'active',
      })
    })

    it('shows the user behind an OAuth token, not the app', async () => {
      const member = await server.createUser('bob')
      const { tokens } = await server.oauthToken(member.token)
      const user = await structured(await connect(tokens.access_token), 'get_authenticated_user')
      expect(user).toMatchObject({ id: member.id, username: 'bob', roles: ['member'] })
    })
  })
})
