import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { UpstreamsModel } from '../../src/upstreams/model.ts'
import { bootstrapOwner, createUserAndLogin, setup, type TestContext } from '../setup.ts'

/**
 * The README's "Server fields" table against the API: every field of a server and of a creation
 * body has a row, the defaults it states are what a server registered with only the required
 * fields has, and the fields it marks † are exactly those the members' redacted view blanks.
 */

interface Row {
  names: string[]
  /** The names marked † (blank in the redacted view). */
  blanked: string[]
  /** The names marked `\*` (write-only). */
  writeOnly: string[]
  type: string
}

function readTable(): Row[] {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')
  const start = readme.indexOf('### Server fields')
  if (start < 0) throw new Error('the README has no "Server fields" section')
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1))
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const [field, type] = line.slice(2, -2).split(' | ') as [string, string]
      const marked = (mark: string) =>
        [...field.matchAll(/`([a-z0-9_]+)`( †| \\\*)?/g)].filter(([, , m]) => m === mark).map(([, name]) => name!)
      return {
        names: [...field.matchAll(/`([a-z0-9_]+)`/g)].map(([, name]) => name!),
        blanked: marked(' †'),
        writeOnly: marked(' \\*'),
        type,
      }
    })
}

/** The default a row states in its type column, `(…)` in backticks, as a JSON value. */
function documentedDefault(row: Row): unknown {
  const match = row.type.match(/\(`([^`]*)`\)/)
  if (!match) return undefined
  const text = match[1]!
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const rows = readTable()
const documented = new Set(rows.flatMap((row) => row.names))

let ctx: TestContext
let owner: { id: string; token: string }
let member: { id: string; token: string }

beforeAll(async () => {
  ctx = await setup()
  owner = await bootstrapOwner(ctx)
  member = await createUserAndLogin(ctx, owner.token, 'member')
})

afterAll(async () => {
  await ctx?.close()
})

async function request(method: string, path: string, token: string, body?: unknown) {
  const response = await ctx.app.handle(
    new Request(`http://localhost${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  )
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe("the README's server fields table", () => {
  it('has a row for every field of a server and of a creation body', () => {
    const fields = [
      ...Object.keys(UpstreamsModel['upstreams.server'].properties),
      ...Object.keys(UpstreamsModel['upstreams.create'].properties),
    ]
    expect(fields.filter((name) => !documented.has(name))).toEqual([])
  })

  it('documents no field the API does not have', () => {
    const fields = new Set([
      ...Object.keys(UpstreamsModel['upstreams.server'].properties),
      ...Object.keys(UpstreamsModel['upstreams.create'].properties),
    ])
    expect([...documented].filter((name) => !fields.has(name))).toEqual([])
  })

  it('states the defaults a server registered with only the required fields has', async () => {
    const created = await request('POST', '/api/v1/mcp/servers', owner.token, {
      display_name: 'Defaults',
      slug: 'defaults',
      url: 'https://defaults.example.com/mcp',
    })
    expect(created.status).toBe(201)
    const stated = rows.flatMap((row) => {
      const value = documentedDefault(row)
      return value === undefined ? [] : row.names.map((name) => [name, value] as const)
    })
    expect(stated.length).toBeGreaterThan(10)
    for (const [name, value] of stated) expect({ [name]: created.body[name] }).toEqual({ [name]: value })
  })

  it('marks with † exactly the fields the redacted view blanks', async () => {
    const created = await request('POST', '/api/v1/mcp/servers', owner.token, {
      display_name: 'Everything set',
      slug: 'everything-set',
      url: 'https://everything.example.com/mcp',
      description: 'A server with every field set',
      icon_url: 'https://everything.example.com/icon.png',
      auth_type: 'oauth2',
      oauth2_client_id: 'client',
      oauth2_client_secret: 'secret',
      oauth2_auth_url: 'https://auth.example.com/authorize',
      oauth2_token_url: 'https://auth.example.com/token',
      oauth2_scopes: 'read write',
      api_key_header: 'X-Api-Key',
      tool_allow_list: ['read_*'],
      tool_deny_list: ['read_secrets'],
      enabled: true,
      forward_identity_headers: true,
    })
    expect(created.status).toBe(201)
    const full = (await request('GET', `/api/v1/mcp/servers/${created.body.id}`, owner.token)).body
    const redacted = (await request('GET', `/api/v1/mcp/servers/${created.body.id}`, member.token)).body
    const blanked = Object.keys(full).filter((name) => typeof full[name] === 'string' && full[name] !== redacted[name])
    expect(blanked.every((name) => redacted[name] === '')).toBe(true)
    expect(blanked.sort()).toEqual(rows.flatMap((row) => row.blanked).sort())
  })

  it('leaves out the write-only secrets, marked *, from every answer', async () => {
    expect(rows.flatMap((row) => row.writeOnly).sort()).toEqual([
      'api_key_value',
      'custom_headers',
      'oauth2_client_secret',
    ])
    const created = await request('POST', '/api/v1/mcp/servers', owner.token, {
      display_name: 'Headers',
      slug: 'headers',
      url: 'https://headers.example.com/mcp',
      auth_type: 'custom_headers',
      custom_headers: { 'X-Team': 'platform' },
    })
    expect(created.status).toBe(201)
    for (const name of rows.flatMap((row) => row.writeOnly)) expect(created.body).not.toHaveProperty(name)
    expect(created.body.has_custom_headers).toBe(true)
  })
})
