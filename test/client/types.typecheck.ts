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
