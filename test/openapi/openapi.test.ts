import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { escapeHtml } from '../../src/pages/html.ts'
import { setup, type TestContext } from '../setup.ts'

describe('OpenAPI document', () => {
  let ctx: TestContext
  let spec: {
    paths: Record<string, Record<string, unknown>>
    components: { schemas: Record<string, unknown> }
    info: { title: string }
  }
  beforeAll(async () => {
    ctx = await setup()
    const response = await ctx.app.handle(new Request('http://localhost/openapi/json'))
    expect(response.status).toBe(200)
    spec = await response.json()
  })
  afterAll(async () => {
    await ctx.close()
  })

  /** `/api/v1/users/:id` as OpenAPI writes it: `/api/v1/users/{id}`. */
  const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

  it('describes every route of the app (CORS preflights aside)', () => {
    const routes = ctx.app.routes
      .filter((route) => !route.path.startsWith('/openapi') && route.method !== 'OPTIONS')
      .map((route) => `${route.method} ${toOpenApiPath(route.path)}`)
    const documented = Object.entries(spec.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    )
    expect(routes.length).toBeGreaterThan(20)
    expect(documented.sort()).toEqual(routes.sort())
  })

  it('writes path parameters in OpenAPI braces', () => {
    expect(Object.keys(spec.paths)).toContain('/api/v1/organizations/{id}/members/{userId}')
    expect(Object.keys(spec.paths).filter((path) => path.includes(':'))).toEqual([])
  })

  it('leaves its own /openapi routes out', () => {
    expect(Object.keys(spec.paths).filter((path) => path.startsWith('/openapi'))).toEqual([])
  })

  it('names component schemas after our models', () => {
    expect(Object.keys(spec.components.schemas)).toEqual(
      expect.arrayContaining([
        'users.user',
        'users.createFirst',
        'auth.login',
        'tokens.created',
        'orgs.organization',
        'api.error',
      ]),
    )
  })

  it('carries the API title', () => {
    expect(spec.info.title).toBe('Gatehouse API')
  })

  it('serves the reference at /openapi as a page of its own, with no script and nothing from elsewhere', async () => {
    const response = await ctx.app.handle(new Request('http://localhost/openapi'))
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith('text/html')
    expect(response.headers.get('x-frame-options')).toBe('DENY')
    const html = await response.text()
    expect(html).toContain('<title>API reference · Gatehouse</title>')
    expect(html).toContain('<h1>Gatehouse API <span class="muted">0.1.0</span></h1>')
    expect(html).toContain('<a href="/openapi/json">/openapi/json</a>')
    expect(html).not.toContain('<script')
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    for (const operations of Object.values(spec.paths))
      for (const operation of Object.values(operations) as { summary?: string }[])
        if (operation.summary) expect(html).toContain(escapeHtml(operation.summary))
  })
})
