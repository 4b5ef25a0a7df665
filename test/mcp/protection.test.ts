// What stands in front of the MCP SDK on /mcp, seen from the wire: bearer tokens and their audience
// and scopes, per-tool step-up, DNS-rebinding checks, revocations taking effect on the very next
// request of the same process, and the RFC 9728 metadata the 401 challenge points at.

import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import type { Kysely } from 'kysely'
import { authenticateTokenCached } from '../../src/auth/auth.service.ts'
import { hashToken } from '../../src/auth/token.ts'
import { nowSeconds } from '../../src/db/index.ts'
import type { Database } from '../../src/db/schema.ts'
import {
  callApi,
  challengeParams,
  closeClients,
  connectClient,
  createApiToken,
  postMcp,
  rpc,
  startMcpServer,
  toolCall,
  type McpServer,
} from './support-mcp-server.ts'

const TOOLS_LIST = () => rpc('tools/list')

describe('MCP endpoint protection', () => {
  let server: McpServer
  beforeEach(async () => {
    server = await startMcpServer()
  })
  afterEach(async () => {
    await closeClients()
    await server.close()
  })

  function expectChallenge(header: string | null, expected: Record<string, string>) {
    const params = challengeParams(header)
    expect(header).toStartWith('Bearer realm="gatehouse"')
    expect(params.resource_metadata).toBe(`${server.publicUrl}/.well-known/oauth-protected-resource/mcp`)
    expect(params).toMatchObject(expected)
    return params
  }

  describe('bearer tokens', () => {
    it('refuses an unknown token with 401 invalid_token, the resource metadata and the mcp scope', async () => {
      const response = await postMcp(server.url, 'gth_oat_notatokenthisserverissued', TOOLS_LIST())
      expect(response.status).toBe(401)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'invalid_token', scope: 'mcp' })
    })

    it('refuses an expired OAuth access token with 401 invalid_token', async () => {
      const { tokens } = await server.oauthToken(server.owner.token)
      await server.db
        .updateTable('oauth_access_tokens')
        .set({ expires_at: nowSeconds() - 60 })
        .where('token_hash', '=', hashToken(tokens.access_token))
        .execute()
      const response = await postMcp(server.url, tokens.access_token, TOOLS_LIST())
      expect(response.status).toBe(401)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'invalid_token', scope: 'mcp' })
    })

    it('refuses a token issued for the management API with 401 invalid_token naming its audience', async () => {
      const { tokens } = await server.oauthToken(server.owner.token, {
        scope: 'mcp api',
        resource: `${server.publicUrl}/api`,
      })
      const response = await postMcp(server.url, tokens.access_token, TOOLS_LIST())
      expect(response.status).toBe(401)
      const params = expectChallenge(response.headers.get('www-authenticate'), { error: 'invalid_token', scope: 'mcp' })
      expect(params.error_description).toContain(`${server.publicUrl}/api`)
      expect(response.body.error.message).toContain(`${server.publicUrl}/api`)
    })

    it("accepts the owner's session token", async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST())
      expect(response.status).toBe(200)
      expect(response.body.result.tools.length).toBeGreaterThan(0)
    })

    it('accepts a personal API token', async () => {
      const { token } = await createApiToken(server, server.owner.token)
      const client = await connectClient(server.url, token)
      const result = await client.callTool({ name: 'get_authenticated_user', arguments: {} })
      expect(result.structuredContent).toMatchObject({ username: 'owner' })
    })

    it('refuses an OAuth token for /mcp without the mcp scope with 403 insufficient_scope', async () => {
      const { tokens } = await server.oauthToken(server.owner.token, { scope: 'api' })
      expect(tokens.scope).toBe('api')
      const response = await postMcp(server.url, tokens.access_token, TOOLS_LIST())
      expect(response.status).toBe(403)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'insufficient_scope', scope: 'mcp' })
    })
  })

  describe('admin tools', () => {
    it('asks an admin token with only mcp to step up to mcp mcp:admin for list_users', async () => {
      const admin = await server.createUser('alice', 'admin')
      const { tokens } = await server.oauthToken(admin.token, { scope: 'mcp' })
      const response = await postMcp(server.url, tokens.access_token, toolCall('list_users'))
      expect(response.status).toBe(403)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'insufficient_scope', scope: 'mcp mcp:admin' })
    })

    it('lets an admin token with mcp mcp:admin call list_users', async () => {
      const admin = await server.createUser('alice', 'admin')
      const { tokens } = await server.oauthToken(admin.token, { scope: 'mcp mcp:admin' })
      expect(tokens.scope).toBe('mcp mcp:admin')
      const client = await connectClient(server.url, tokens.access_token)
      const result = await client.callTool({ name: 'list_users', arguments: {} })
      expect(result.isError).toBeFalsy()
      expect(
        (result.structuredContent as { users: { username: string }[] }).users.map((user) => user.username),
      ).toEqual(['alice', 'owner'])
    })

    it('does not run list_users for an admin token without mcp:admin when the call comes in a JSON-RPC batch', async () => {
      const admin = await server.createUser('alice', 'admin')
      const { tokens } = await server.oauthToken(admin.token, { scope: 'mcp' })
      const response = await postMcp(server.url, tokens.access_token, [toolCall('list_users')])
      expect(response.body?.result?.structuredContent?.users).toBeUndefined()
      expect(response.status).toBe(403)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'insufficient_scope', scope: 'mcp mcp:admin' })
    })

    it('never lists list_users for a member', async () => {
      const member = await server.createUser('bob')
      const client = await connectClient(server.url, member.token)
      const { tools } = await client.listTools()
      expect(tools.map((tool) => tool.name)).not.toContain('list_users')
      expect(tools.map((tool) => tool.name)).toContain('get_authenticated_user')
    })

    it("answers a member's list_users call as an unknown tool, not with 403", async () => {
      const member = await server.createUser('bob')
      const response = await postMcp(server.url, member.token, toolCall('list_users'))
      expect(response.status).toBe(200)
      expect(response.body.error.message).toBe('Tool list_users not found')

      const client = await connectClient(server.url, member.token)
      await expect(client.callTool({ name: 'list_users', arguments: {} })).rejects.toThrow('Tool list_users not found')
    })
  })

  describe('DNS-rebinding checks', () => {
    it('refuses a request from a foreign Origin with 403', async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST(), {
        origin: 'https://evil.example.com',
      })
      expect(response.status).toBe(403)
      expect(response.body.error.message).toContain('https://evil.example.com')
    })

    it('refuses a request whose Host is not a loopback name when the public URL is a loopback one', async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST(), { host: 'evil.example.com' })
      expect(response.status).toBe(403)
      expect(response.body.error.message).toContain('evil.example.com')
    })

    it('answers a request from the public URL origin', async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST(), { origin: server.publicUrl })
      expect(response.status).toBe(200)
      expect(response.body.result.tools.length).toBeGreaterThan(0)
    })

    it('answers a request whose Host is another loopback name', async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST(), {
        host: `localhost:${new URL(server.url).port}`,
      })
      expect(response.status).toBe(200)
    })

    it('refuses a malformed Host header with 400 rather than failing with 500', async () => {
      const response = await postMcp(server.url, server.owner.token, TOOLS_LIST(), { host: 'evil.example.com:99999' })
      expect(response.status).toBe(400)
    })
  })

  describe('revocations on the same process', () => {
    it('refuses an API token on the very next request after it is deleted', async () => {
      const apiToken = await createApiToken(server, server.owner.token)
      expect((await postMcp(server.url, apiToken.token, TOOLS_LIST())).status).toBe(200)
      expect((await callApi(server, server.owner.token, 'DELETE', `/api/v1/tokens/${apiToken.id}`)).status).toBe(204)
      const response = await postMcp(server.url, apiToken.token, TOOLS_LIST())
      expect(response.status).toBe(401)
      expectChallenge(response.headers.get('www-authenticate'), { error: 'invalid_token' })
    })

    it("refuses a suspended user's API and OAuth tokens on the very next request", async () => {
      const member = await server.createUser('bob')
      const apiToken = await createApiToken(server, member.token)
      const { tokens } = await server.oauthToken(member.token)
      expect((await postMcp(server.url, apiToken.token, TOOLS_LIST())).status).toBe(200)
      expect((await postMcp(server.url, tokens.access_token, TOOLS_LIST())).status).toBe(200)

      expect((await callApi(server, server.owner.token, 'POST', `/api/v1/users/${member.id}/suspend`)).status).toBe(200)
      expect((await postMcp(server.url, apiToken.token, TOOLS_LIST())).status).toBe(401)
      expect((await postMcp(server.url, tokens.access_token, TOOLS_LIST())).status).toBe(401)
    })

    it("refuses an app's OAuth token on the very next request after the user revokes the app", async () => {
      const { client, tokens } = await server.oauthToken(server.owner.token)
      expect((await postMcp(server.url, tokens.access_token, TOOLS_LIST())).status).toBe(200)
      const revoked = await callApi(
        server,
        server.owner.token,
        'DELETE',
        `/api/v1/users/me/oauth-grants/${encodeURIComponent(client.client_id)}`,
      )
      expect(revoked.status).toBe(204)
      expect((await postMcp(server.url, tokens.access_token, TOOLS_LIST())).status).toBe(401)
    })

    it('hides list_users on the very next request after an admin is demoted', async () => {
      const admin = await server.createUser('alice', 'admin')
      const before = await postMcp(server.url, admin.token, TOOLS_LIST())
      expect(before.body.result.tools.map((tool: { name: string }) => tool.name)).toContain('list_users')
      expect(
        (await callApi(server, server.owner.token, 'PUT', `/api/v1/users/${admin.id}/role`, { role: 'member' })).status,
      ).toBe(200)
      const after = await postMcp(server.url, admin.token, TOOLS_LIST())
      expect(after.body.result.tools.map((tool: { name: string }) => tool.name)).not.toContain('list_users')
    })

    it('does not let a token lookup that was in flight during the revocation bring the revoked token back', async () => {
      const apiToken = await createApiToken(server, server.owner.token)
      let release!: () => void
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      let queried!: () => void
      const hasQueried = new Promise<void>((resolve) => {
        queried = resolve
      })
      // A lookup that has read the (still live) token from the database but not finished yet...
      const inFlight = authenticateTokenCached(
        { ...server.deps, db: holdResults(server.db, released, queried) },
        apiToken.token,
      )
      await hasQueried
      // ...while the token is deleted, which clears this process's principal cache.
      expect((await callApi(server, server.owner.token, 'DELETE', `/api/v1/tokens/${apiToken.id}`)).status).toBe(204)
      release()
      await inFlight

      const response = await postMcp(server.url, apiToken.token, TOOLS_LIST())
      expect(response.status).toBe(401)
    })
  })

  describe('protected resource metadata', () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      it(`describes /mcp at ${path}`, async () => {
        const response = await fetch(`${server.url}${path}`)
        expect(response.status).toBe(200)
        const metadata = await response.json()
        expect(metadata.resource).toBe(`${server.publicUrl}/mcp`)
        expect(metadata.authorization_servers).toEqual([server.publicUrl])
        expect(metadata.scopes_supported).toContain('mcp')
        expect(metadata.bearer_methods_supported).toEqual(['header'])
      })
    }

    it('serves the metadata the 401 challenge points at', async () => {
      const challenge = await postMcp(server.url, undefined, TOOLS_LIST())
      const { resource_metadata } = challengeParams(challenge.headers.get('www-authenticate'))
      const response = await fetch(resource_metadata)
      expect(response.status).toBe(200)
      expect((await response.json()).resource).toBe(`${server.publicUrl}/mcp`)
    })
  })
})

/**
 * `db` whose queries run at once but whose results are handed back only once `released` settles;
 * `onQuery` is told when a query has run. Builders are wrapped along the chain, and every method
 * runs on the real object so Kysely's private fields keep working.
 */
function holdResults(db: Kysely<Database>, released: Promise<void>, onQuery: () => void): Kysely<Database> {
  const EXECUTE = new Set(['execute', 'executeTakeFirst', 'executeTakeFirstOrThrow'])
  const wrap = (target: object): any =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          const out = value.apply(object, args)
          if (EXECUTE.has(String(property)))
            return (out as Promise<unknown>).then(async (rows) => {
              onQuery()
              await released
              return rows
            })
          return out !== null && typeof out === 'object' && !(out instanceof Promise) ? wrap(out) : out
        }
      },
    })
  return wrap(db)
}
