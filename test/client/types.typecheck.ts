// Compile-time checks of the typed client, run by `tsc --noEmit -p .` (not by `bun test`).
// Each `@ts-expect-error` fails the typecheck if the line below it ever starts compiling.
import { createClient } from '../../client/index.ts'

export async function typedClientChecks(baseUrl: string, token: string) {
  const anonymous = createClient(baseUrl)
  const client = createClient(baseUrl, { token })

  // Calls that must compile
  const login = await anonymous.api.v1.auth.login.post({ login: 'owner', password: 'owner-password-1' })
  if (login.data) {
    const sessionToken: string = login.data.session_token
    const role: 'owner' | 'admin' | 'member' = login.data.user.role
    void sessionToken
    void role
  }
  const me = await client.api.v1.users.me.get()
  if (me.data) {
    const organizationIds: string[] = me.data.organization_ids
    void organizationIds
  }
  await anonymous.api.v1.users.first.post({
    email: 'owner@example.com',
    username: 'owner',
    password: 'owner-password-1',
  })
  await client.api.v1.tokens.post({ name: 'ci', expires_in_seconds: 3600 })
  await client.api.v1.tokens({ id: 'token-id' }).delete()
  await client.api.v1.organizations({ id: 'org-id' }).members({ userId: 'user-id' }).put({ role: 'admin' })
  const server = await client.api.v1.mcp.servers.post({
    display_name: 'Linear',
    slug: 'linear',
    url: 'https://mcp.linear.app/mcp',
    auth_type: 'api_key',
    api_key_header: 'X-Api-Key',
    api_key_value: 'secret',
    availability: 'default_on',
  })
  if (server.data) {
    const connected: boolean = server.data.auth_connected
    const status: 'connected' | 'needs_reauth' | 'not_connected' | 'not_required' = server.data.connection.status
    void connected
    void status
    await client.api.v1.mcp.servers({ id: server.data.id }).patch({ enabled: true })
    await client.api.v1.mcp.servers({ id: server.data.id }).oauth2.rediscover.post()
  }
  if (server.error?.status === 409) {
    const message: string = server.error.value.message
    void message
  }
  // @ts-expect-error availability is force_on, default_on or default_off
  await client.api.v1.mcp.servers.post({ display_name: 'x', slug: 'x', url: 'https://x', availability: 'always' })
  // @ts-expect-error url is required
  await client.api.v1.mcp.servers.post({ display_name: 'x', slug: 'x' })
  const listed = await client.api.v1.mcp.servers.get()
  // @ts-expect-error secrets are write-only: a server has no api_key_value
  void listed.data?.[0].api_key_value

  if (login.error?.status === 401) {
    const message: string = login.error.value.message
    void message
  }

  // A misspelt route
  // @ts-expect-error there is no /api/v1/userz
  await client.api.v1.userz.get()

  // A body field of the wrong type
  // @ts-expect-error login must be a string
  await anonymous.api.v1.auth.login.post({ login: 1, password: 'x' })

  // A missing required field
  // @ts-expect-error password is required
  await anonymous.api.v1.auth.login.post({ login: 'owner' })

  // A missing required field of the first-user body
  // @ts-expect-error username is required
  await anonymous.api.v1.users.first.post({ email: 'owner@example.com', password: 'owner-password-1' })

  // A role the API does not have
  // @ts-expect-error role is 'admin' or 'member'
  await client.api.v1.organizations({ id: 'org-id' }).members({ userId: 'user-id' }).put({ role: 'owner' })

  // A method the route does not answer
  // @ts-expect-error /api/v1/users/me has no DELETE
  await client.api.v1.users.me.delete()

  // A response field that does not exist
  // @ts-expect-error the session response has no password
  void login.data?.password
}
