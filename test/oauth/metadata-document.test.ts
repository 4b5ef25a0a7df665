import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isPrivateAddress } from '../../src/http/outbound.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { authorizeWithBearer, createPkce, REDIRECT_URI } from './helpers.ts'
import { authorizeParams, exchangeCode, getAuthorize } from './support-flow.ts'

/**
 * Client ID Metadata Documents served by a real HTTPS server on loopback, with a self-signed
 * certificate that the app trusts through `outboundCaFile`. Each test serves its documents
 * under paths of its own, and each test has its own app (and so its own document cache).
 */
let certDir: string
let certPath: string
let server: ReturnType<typeof Bun.serve>
const routes = new Map<string, () => Response>()
const hits = new Map<string, number>()
let nextPath = 0

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'gatehouse-cimd-'))
  certPath = join(certDir, 'cert.pem')
  const keyPath = join(certDir, 'key.pem')
  // IP:::ffff:127.0.0.1 lets the same certificate serve the IPv4-mapped form of the loopback address.
  const openssl = Bun.spawnSync(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::ffff:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdout: 'ignore', stderr: 'pipe' },
  )
  if (openssl.exitCode !== 0) throw new Error(`openssl: ${openssl.stderr.toString()}`)
  server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    tls: { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') },
    fetch(request) {
      const path = new URL(request.url).pathname
      hits.set(path, (hits.get(path) ?? 0) + 1)
      return routes.get(path)?.() ?? new Response('not found', { status: 404 })
    },
  })
})

afterAll(() => {
  server.stop(true)
  rmSync(certDir, { recursive: true, force: true })
})

/** A fresh path on the document server, its https URL and a way to choose what it answers. */
function documentUrl(host = '127.0.0.1') {
  const path = `/clients/${++nextPath}.json`
  return {
    path,
    url: `https://${host}:${server.port}${path}`,
    serve(answer: () => Response) {
      routes.set(path, answer)
    },
    hits: () => hits.get(path) ?? 0,
  }
}

function clientDocument(url: string, extra: Record<string, unknown> = {}) {
  return { client_id: url, client_name: 'Document Client', redirect_uris: [REDIRECT_URI], ...extra }
}

async function expectErrorPage(response: Response): Promise<string> {
  expect(response.status).toBe(400)
  expect(response.headers.get('content-type')).toContain('text/html')
  expect(response.headers.get('location')).toBeNull()
  return response.text()
}

describe('client ID metadata documents', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup({ outboundAllowPrivate: true, outboundCaFile: certPath })
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  const bearer = () => ({ authorization: `Bearer ${owner.token}` })

  it('shows the consent page with the client_name from a valid document', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const response = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())
    expect(response.status).toBe(200)
    const page = await response.text()
    expect(page).toContain('Document Client')
    expect(doc.hits()).toBe(1)
  })

  it('completes a flow to tokens with the document URL as client_id and no secret', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const pkce = createPkce()
    const location = await authorizeWithBearer(ctx, owner.token, authorizeParams(doc.url, pkce))
    const code = location.searchParams.get('code')
    expect(code).toStartWith('gth_code_')
    const tokens = await exchangeCode(ctx, { clientId: doc.url, code: code!, verifier: pkce.verifier })
    expect(tokens.status).toBe(200)
    expect(tokens.body.access_token).toStartWith('gth_oat_')
  })

  it('shows an error page for a document that names another client_id', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument('https://other.example.com/client.json')))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('must name its own URL as client_id')
  })

  it('shows an error page for a redirect_uri the document does not list', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url, { redirect_uris: ['https://app.example.com/callback'] })))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('does not match any redirect URI registered')
  })

  it('does not follow a redirect from the document URL', async () => {
    const target = documentUrl()
    target.serve(() => Response.json(clientDocument(target.url)))
    const doc = documentUrl()
    doc.serve(() => new Response(null, { status: 302, headers: { location: target.url } }))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('redirect (302)')
    expect(target.hits()).toBe(0)
  })

  it('shows an error page when the document URL answers 404', async () => {
    const doc = documentUrl()
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('answered 404')
  })

  it('shows an error page for a document over 5 KiB', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url, { padding: 'x'.repeat(6 * 1024) })))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('larger than 5120 bytes')
  })

  it('shows an error page for a document over 5 KiB streamed without a length', async () => {
    const doc = documentUrl()
    const body = new TextEncoder().encode(JSON.stringify(clientDocument(doc.url, { padding: 'x'.repeat(6 * 1024) })))
    // Chunks that arrive one after another make the server answer chunked, with no Content-Length.
    const stream = () => {
      let offset = 0
      return new ReadableStream({
        async pull(controller) {
          await Bun.sleep(1)
          if (offset >= body.length) return controller.close()
          controller.enqueue(body.slice(offset, offset + 1024))
          offset += 1024
        },
      })
    }
    doc.serve(() => new Response(stream(), { headers: { 'content-type': 'application/json' } }))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('larger than 5120 bytes')
  })

  it('shows an error page for a document that is not JSON', async () => {
    const doc = documentUrl()
    doc.serve(() => new Response('<html>hello</html>', { headers: { 'content-type': 'text/html' } }))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('not JSON')
  })

  it('does not cache a failure: once the document is fixed, the next try works', async () => {
    const doc = documentUrl()
    await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const response = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())
    expect(response.status).toBe(200)
    expect(await response.text()).toContain('Document Client')
  })

  it('does not treat an http:// client_id as a document URL', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const httpUrl = doc.url.replace('https://', 'http://')
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(httpUrl, createPkce()), bearer()))
    expect(page).toContain('not registered')
    expect(doc.hits()).toBe(0)
  })
})

describe('client ID metadata documents under the default outbound policy', () => {
  let ctx: TestContext
  beforeEach(async () => {
    // Private destinations refused (the default); the test CA is trusted so only the address rule can refuse.
    ctx = await setup({ outboundCaFile: certPath })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('refuses a document on 127.0.0.1 with a page that names a private or loopback address', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce())))
    expect(page).toContain('private or loopback address')
    expect(doc.hits()).toBe(0)
  })

  it('refuses a document on localhost with a page that names a private or loopback address', async () => {
    const doc = documentUrl('localhost')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce())))
    expect(page).toContain('private or loopback address')
    expect(doc.hits()).toBe(0)
  })

  it('refuses a document on the IPv4-mapped IPv6 form of 127.0.0.1', async () => {
    const doc = documentUrl('[::ffff:127.0.0.1]')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const response = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()))
    // The loopback server must never have been asked for the document.
    expect(doc.hits()).toBe(0)
    const page = await expectErrorPage(response)
    expect(page).toContain('private or loopback address')
  })
})

describe('isPrivateAddress', () => {
  for (const address of [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '::1',
    'fc00::1',
    'fe80::1',
    '::ffff:127.0.0.1',
  ])
    it(`treats ${address} as private`, () => {
      expect(isPrivateAddress(address)).toBe(true)
    })

  it('treats the hex form of an IPv4-mapped loopback address (::ffff:7f00:1, as URLs write it) as private', () => {
    expect(isPrivateAddress('::ffff:7f00:1')).toBe(true)
  })

  it('treats the hex form of an IPv4-mapped metadata address (::ffff:a9fe:a9fe) as private', () => {
    expect(isPrivateAddress('::ffff:a9fe:a9fe')).toBe(true)
  })

  for (const address of ['8.8.8.8', '2606:4700::1111'])
    it(`treats ${address} as public`, () => {
      expect(isPrivateAddress(address)).toBe(false)
    })
})
