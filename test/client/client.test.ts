import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createClient } from '../../client/index.ts'
import { OWNER, startTestServer } from '../setup.ts'

type TestServer = Awaited<ReturnType<typeof startTestServer>>

describe('typed client bootstrap', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it('creates the first user on a fresh server', async () => {
    const { data, error, status } = await createClient(server.url).api.v1.users.first.post(OWNER)
    expect(error).toBeNull()
    expect(status).toBe(201)
    expect(data).toMatchObject({ username: OWNER.username, email: OWNER.email, role: 'owner' })
  })
})

describe('typed client against a real server', () => {
  let server: TestServer
  let sessionToken: string
  beforeAll(async () => {
    server = await startTestServer()
    const created = await createClient(server.url).api.v1.users.first.post(OWNER)
    if (created.error) throw new Error(`first user: ${created.error.status}`)
    const login = await createClient(server.url).api.v1.auth.login.post({
      login: OWNER.username,
      password: OWNER.password,
    })
    if (!login.data) throw new Error(`login: ${login.error?.status}`)
    sessionToken = login.data.session_token
  })
  afterAll(async () => {
    await server.close()
  })

  it('signs in with email and password and receives a session token', async () => {
    const { data, error } = await createClient(server.url).api.v1.auth.login.post({
      login: OWNER.email,
      password: OWNER.password,
    })
    expect(error).toBeNull()
    expect(data?.user.username).toBe(OWNER.username)
    expect(data?.session_token).toBeString()
  })

  it('reads the signed-in user with the session token', async () => {
    const { data } = await createClient(server.url, { token: sessionToken }).api.v1.users.me.get()
    expect(data).toMatchObject({ username: OWNER.username, email: OWNER.email })
    expect(data?.organization_ids).toHaveLength(1)
  })

  it('creates an API token and shows it once', async () => {
    const { data, status } = await createClient(server.url, { token: sessionToken }).api.v1.tokens.post({
      name: 'created',
    })
    expect(status).toBe(201)
    expect(data?.name).toBe('created')
    expect(data?.token).toStartWith(data!.prefix)
  })

  it('lists the API tokens it created, without the tokens themselves', async () => {
    const client = createClient(server.url, { token: sessionToken })
    await client.api.v1.tokens.post({ name: 'listed' })
    const { data } = await client.api.v1.tokens.get()
    const listed = data?.find((token) => token.name === 'listed')
    expect(listed).toBeDefined()
    expect(listed).not.toHaveProperty('token')
  })

  it('revokes an API token so that it stops working', async () => {
    const client = createClient(server.url, { token: sessionToken })
    const { data: created } = await client.api.v1.tokens.post({ name: 'revoked' })
    const revoked = await client.api.v1.tokens({ id: created!.id }).delete()
    expect(revoked.status).toBe(204)
    expect((await client.api.v1.tokens.get()).data?.map((token) => token.name)).not.toContain('revoked')
    const { error } = await createClient(server.url, { token: created!.token }).api.v1.users.me.get()
    expect(error?.status).toBe(401)
  })

  it('authenticates with an API token', async () => {
    const { data: created } = await createClient(server.url, { token: sessionToken }).api.v1.tokens.post({
      name: 'script',
    })
    const { data } = await createClient(server.url, { token: created!.token }).api.v1.users.me.get()
    expect(data?.username).toBe(OWNER.username)
  })

  it('sends extra headers alongside the token', async () => {
    const client = createClient(server.url, { token: sessionToken, headers: { 'x-request-id': 'client-test-1' } })
    const { data, response } = await client.api.v1.users.me.get()
    expect(data?.username).toBe(OWNER.username)
    expect(response.headers.get('x-request-id')).toBe('client-test-1')
  })

  it('returns an error with its status and message', async () => {
    const { data, error } = await createClient(server.url).api.v1.auth.login.post({
      login: OWNER.email,
      password: 'wrong-password',
    })
    expect(data).toBeNull()
    if (error?.status !== 401) throw new Error(`expected 401, got ${error?.status}`)
    expect(error.value.message).toBe('Incorrect email/username or password')
  })

  it('returns 401 for a request without a token', async () => {
    const { error } = await createClient(server.url).api.v1.users.me.get()
    expect(error?.status).toBe(401)
    expect(error?.value).toMatchObject({ message: 'Authentication required' })
  })

  it('returns 404 with a message when revoking a token that does not exist', async () => {
    const { error } = await createClient(server.url, { token: sessionToken })
      .api.v1.tokens({ id: 'no-such-token' })
      .delete()
    expect(error?.status).toBe(404)
    expect(error?.value).toMatchObject({ message: 'API token not found' })
  })
})
