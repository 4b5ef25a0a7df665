import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { OWNER, setup, startTestServer, type TestContext } from '../setup.ts'

function postJson(path: string, body: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://localhost${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
}

describe('API error responses', () => {
  let ctx: TestContext
  beforeEach(async () => {
    ctx = await setup({ maxBodyBytes: 2048 })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('answers an unknown route with a JSON 404 naming the method and path', async () => {
    const response = await ctx.app.handle(new Request('http://localhost/api/v1/nothing-here'))
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toContain('application/json')
    expect(await response.json()).toEqual({ message: 'No route for GET /api/v1/nothing-here' })
  })

  it('names the method of an unknown route that is not a GET', async () => {
    const response = await ctx.app.handle(new Request('http://localhost/healthz', { method: 'DELETE' }))
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ message: 'No route for DELETE /healthz' })
  })

  it('answers malformed JSON with 400 "Malformed request body" and a detail', async () => {
    const response = await ctx.app.handle(postJson('/api/v1/auth/login', '{"login": "owner", "password":'))
    expect(response.status).toBe(400)
    const body = await response.json()
    expect(body.message).toBe('Malformed request body')
    expect(typeof body.detail).toBe('string')
  })

  it('answers a body over the limit with a JSON 413 naming the limit', async () => {
    const body = JSON.stringify({ ...OWNER, display_name: 'x'.repeat(4096) })
    const response = await ctx.app.handle(
      postJson('/api/v1/users/first', body, { 'content-length': String(body.length) }),
    )
    expect(response.status).toBe(413)
    expect(await response.json()).toEqual({
      message: 'Request body too large',
      detail: `The limit is 2048 bytes; this body is ${body.length}`,
    })
  })

  it('writes nothing when it refuses a body over the limit', async () => {
    // Valid apart from its size: without the limit this body would create the owner.
    const body = JSON.stringify({ ...OWNER, padding: 'x'.repeat(4096) })
    const refused = await ctx.app.handle(
      postJson('/api/v1/users/first', body, { 'content-length': String(body.length) }),
    )
    expect(refused.status).toBe(413)
    expect(await ctx.db.selectFrom('users').select('id').execute()).toEqual([])
    const { status } = await ctx.api().api.v1.users.first.post(OWNER)
    expect(status).toBe(201)
  })

  it('answers a body that fails validation with 422 naming the field', async () => {
    const response = await ctx.app.handle(
      postJson('/api/v1/users/first', JSON.stringify({ ...OWNER, email: 'not-an-email' })),
    )
    expect(response.status).toBe(422)
    const body = await response.json()
    expect(body.message).toBe('Invalid request body')
    expect(body.validations.map((v: { field: string }) => v.field)).toEqual(['email'])
    expect(typeof body.validations[0].detail).toBe('string')
  })

  it('names every invalid field of a body', async () => {
    const response = await ctx.app.handle(
      postJson(
        '/api/v1/users/first',
        JSON.stringify({ email: 'owner@example.com', username: '-bad-', password: 'short' }),
      ),
    )
    expect(response.status).toBe(422)
    const fields = (await response.json()).validations.map((v: { field: string }) => v.field)
    expect(fields).toContain('username')
    expect(fields).toContain('password')
  })

  it('names a missing required field', async () => {
    const response = await ctx.app.handle(postJson('/api/v1/auth/login', JSON.stringify({ login: 'owner' })))
    expect(response.status).toBe(422)
    const fields = (await response.json()).validations.map((v: { field: string }) => v.field)
    expect(fields).toContain('password')
  })
})

describe('body limit on a real server', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  beforeAll(async () => {
    server = await startTestServer({ maxBodyBytes: 2048 })
  })
  afterAll(async () => {
    await server.close()
  })

  it('refuses a streamed body over the limit with 413', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(1024))
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(chunk)
        controller.close()
      },
    })
    const response = await fetch(`${server.url}/api/v1/users/first`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit)
    expect(response.status).toBe(413)
    expect(await response.json()).toEqual({ message: 'Request body too large', detail: 'The limit is 2048 bytes' })
  })

  it('answers a fixed-length body over the limit with the documented JSON 413', async () => {
    const body = JSON.stringify({ ...OWNER, padding: 'x'.repeat(4096) })
    const response = await fetch(`${server.url}/api/v1/users/first`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    expect(response.status).toBe(413)
    expect(response.headers.get('content-type') ?? '(none)').toContain('application/json')
    expect(await response.json()).toEqual({
      message: 'Request body too large',
      detail: `The limit is 2048 bytes; this body is ${body.length}`,
    })
  })

  it('still creates the first user after refusing oversized bodies', async () => {
    const response = await fetch(`${server.url}/api/v1/users/first`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OWNER),
    })
    expect(response.status).toBe(201)
  })
})
