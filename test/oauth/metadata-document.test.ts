import { createSelfSignedCertificate } from '../fixtures/tls.ts'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test'
import { createOutboundFetch } from '../../src/http/outbound.ts'
import { MetadataDocumentResolver } from '../../src/oauth/metadata-document.ts'
import { bootstrapOwner, setup, type TestContext } from '../setup.ts'
import { authorizeWithBearer, createPkce, REDIRECT_URI } from './helpers.ts'
import { authorizeParams, exchangeCode, getAuthorize } from './support-flow.ts'

/**
 * Client ID Metadata Documents served by a real HTTPS server on loopback, with a self-signed
 * certificate that the app trusts through `outboundCaFile`. Each test serves its documents
 * under paths of its own, and each test has its own app (and so its own document cache).
 */
let certificate: ReturnType<typeof createSelfSignedCertificate>
let certPath: string
let server: ReturnType<typeof Bun.serve>
const routes = new Map<string, () => Response | Promise<Response>>()
const hits = new Map<string, number>()
let nextPath = 0

beforeAll(() => {
  // IP:::ffff:127.0.0.1 lets the same certificate serve the IPv4-mapped form of the loopback address.
  certificate = createSelfSignedCertificate('localhost', 'DNS:localhost,IP:127.0.0.1,IP:::ffff:127.0.0.1')
  certPath = certificate.certPath
  server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    tls: { cert: certificate.cert, key: certificate.key },
    fetch(request) {
      const path = new URL(request.url).pathname
      hits.set(path, (hits.get(path) ?? 0) + 1)
      return routes.get(path)?.() ?? new Response('not found', { status: 404 })
    },
  })
})

afterAll(() => {
  server.stop(true)
  certificate.remove()
})

/** A fresh path on the document server, its https URL and a way to choose what it answers. */
function documentUrl(host = '127.0.0.1') {
  const path = `/clients/${++nextPath}.json`
  return {
    path,
    url: `https://${host}:${server.port}${path}`,
    serve(answer: () => Response | Promise<Response>) {
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

  it('signs in on the next attempt once a document that answered 404 answers 200', async () => {
    const doc = documentUrl()
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('could not be fetched: answered 404, not 200')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const consent = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())
    expect(consent.status).toBe(200)
    expect(await consent.text()).toContain('Document Client')
    expect(doc.hits()).toBe(2)
  })

  it('names the status of a bot wall and asks again on the next attempt', async () => {
    const doc = documentUrl()
    doc.serve(() => new Response('<html>are you human?</html>', { status: 403 }))
    for (let attempt = 1; attempt <= 2; attempt++) {
      const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
      expect(page).toContain('answered 403, not 200')
      expect(doc.hits()).toBe(attempt)
    }
  })

  it('fetches a no-store document every time and reuses a max-age one', async () => {
    const fresh = documentUrl()
    fresh.serve(() => Response.json(clientDocument(fresh.url), { headers: { 'cache-control': 'no-store' } }))
    const cached = documentUrl()
    cached.serve(() => Response.json(clientDocument(cached.url), { headers: { 'cache-control': 'max-age=600' } }))
    for (let i = 0; i < 2; i++)
      for (const doc of [fresh, cached])
        expect((await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())).status).toBe(200)
    expect(fresh.hits()).toBe(2)
    expect(cached.hits()).toBe(1)
  })

  it('asks for consent again for a redirect URI the document dropped and later listed again', async () => {
    const doc = documentUrl()
    const other = 'http://127.0.0.1:8765/other-callback'
    let redirectUris = [REDIRECT_URI]
    doc.serve(() =>
      Response.json(clientDocument(doc.url, { redirect_uris: redirectUris }), {
        headers: { 'cache-control': 'no-store' },
      }),
    )
    const consents = async () =>
      (await ctx.db.selectFrom('oauth_consents').select('redirect_uri').where('client_id', '=', doc.url).execute()).map(
        (consent) => consent.redirect_uri,
      )
    await authorizeWithBearer(ctx, owner.token, authorizeParams(doc.url, createPkce()))
    expect(await consents()).toEqual([REDIRECT_URI])

    redirectUris = [other]
    const dropped = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(dropped).toContain('does not match any redirect URI registered')
    const row = await ctx.db
      .selectFrom('oauth_clients')
      .select('redirect_uris')
      .where('id', '=', doc.url)
      .executeTakeFirst()
    expect(JSON.parse(row!.redirect_uris)).toEqual([other])
    expect(await consents()).toEqual([])

    redirectUris = [REDIRECT_URI, other]
    const again = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())
    expect(again.status).toBe(200)
    expect(await again.text()).toContain('Document Client')
  })

  it('accepts a document that prefers an auth method Gatehouse lacks as a public client', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url, { token_endpoint_auth_method: 'private_key_jwt' })))
    const pkce = createPkce()
    const location = await authorizeWithBearer(ctx, owner.token, authorizeParams(doc.url, pkce))
    const tokens = await exchangeCode(ctx, {
      clientId: doc.url,
      code: location.searchParams.get('code')!,
      verifier: pkce.verifier,
    })
    expect(tokens.status).toBe(200)
    const row = await ctx.db
      .selectFrom('oauth_clients')
      .select('token_endpoint_auth_method')
      .where('id', '=', doc.url)
      .executeTakeFirst()
    expect(row?.token_endpoint_auth_method).toBe('none')
  })

  it('refuses a document that asks for a shared secret', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url, { token_endpoint_auth_method: 'client_secret_basic' })))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer()))
    expect(page).toContain('cannot use a shared secret')
  })

  it('follows the dynamic registration switch, in the metadata too', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const settings = ctx.api(owner.token).api.v1.settings.oauth
    const advertised = async () =>
      (await (await ctx.app.handle(new Request('http://localhost/.well-known/oauth-authorization-server'))).json())
        .client_id_metadata_document_supported
    await settings.put({ dynamic_registration: false })
    const response = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())
    expect(response.status).toBe(403)
    expect(await response.text()).toContain('dynamic client registration is turned off')
    expect(doc.hits()).toBe(0)
    expect(await advertised()).toBe(false)

    await settings.put({ dynamic_registration: true })
    expect((await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer())).status).toBe(200)
    expect(await advertised()).toBe(true)
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

  it('refuses a document on 127.0.0.1 with a page that says the address is not allowed', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce())))
    expect(page).toContain('127.0.0.1 is not an allowed destination')
    expect(doc.hits()).toBe(0)
  })

  it('refuses a document on localhost without saying what localhost resolves to', async () => {
    const doc = documentUrl('localhost')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const page = await expectErrorPage(await getAuthorize(ctx, authorizeParams(doc.url, createPkce())))
    expect(page).toContain('localhost is not an allowed destination')
    expect(page).not.toContain('127.0.0.1')
    expect(page).not.toContain('::1')
    expect(doc.hits()).toBe(0)
  })

  it('refuses a document on the IPv4-mapped IPv6 form of 127.0.0.1', async () => {
    const doc = documentUrl('[::ffff:127.0.0.1]')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    const response = await getAuthorize(ctx, authorizeParams(doc.url, createPkce()))
    // The loopback server must never have been asked for the document.
    expect(doc.hits()).toBe(0)
    const page = await expectErrorPage(response)
    expect(page).toContain('is not an allowed destination')
  })
})

describe('client ID metadata documents from many new URLs', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup({ outboundAllowPrivate: true, outboundCaFile: certPath, registrationRateLimit: 2 })
    owner = await bootstrapOwner(ctx)
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('fetches only so many documents it has not seen before per client address, and keeps serving known ones', async () => {
    const bearer = { authorization: `Bearer ${owner.token}` }
    const docs = [documentUrl(), documentUrl(), documentUrl()]
    for (const doc of docs)
      doc.serve(() => Response.json(clientDocument(doc.url), { headers: { 'cache-control': 'no-store' } }))
    for (const doc of docs.slice(0, 2))
      expect((await getAuthorize(ctx, authorizeParams(doc.url, createPkce()), bearer)).status).toBe(200)
    const response = await getAuthorize(ctx, authorizeParams(docs[2].url, createPkce()), bearer)
    expect(response.status).toBe(429)
    expect(await response.text()).toContain('too many new client metadata documents')
    expect(docs[2].hits()).toBe(0)
    // A document already stored is fetched again (no-store) without counting as new.
    expect((await getAuthorize(ctx, authorizeParams(docs[0].url, createPkce()), bearer)).status).toBe(200)
    expect(docs[0].hits()).toBe(2)
  })
})

describe('the metadata document cache over time', () => {
  let ctx: TestContext
  let clock: number
  let resolver: MetadataDocumentResolver
  beforeEach(async () => {
    ctx = await setup()
    clock = Date.now()
    resolver = new MetadataDocumentResolver({
      db: ctx.db,
      fetch: createOutboundFetch({ allowPrivate: true, caFile: certPath }),
      newDocumentsPerHour: 100,
      now: () => clock,
    })
  })
  afterEach(async () => {
    await ctx.close()
  })

  it('keeps a max-age document until its age runs out, capped at a day', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url), { headers: { 'cache-control': 'public, max-age=600' } }))
    await resolver.resolveClient(doc.url)
    clock += 599_000
    await resolver.resolveClient(doc.url)
    expect(doc.hits()).toBe(1)
    clock += 2_000
    await resolver.resolveClient(doc.url)
    expect(doc.hits()).toBe(2)

    const long = documentUrl()
    long.serve(() => Response.json(clientDocument(long.url), { headers: { 'cache-control': 'max-age=31536000' } }))
    await resolver.resolveClient(long.url)
    clock += 86_401_000
    await resolver.resolveClient(long.url)
    expect(long.hits()).toBe(2)
  })

  it('keeps a document without Cache-Control for five minutes', async () => {
    const doc = documentUrl()
    doc.serve(() => Response.json(clientDocument(doc.url)))
    await resolver.resolveClient(doc.url)
    clock += 299_000
    await resolver.resolveClient(doc.url)
    expect(doc.hits()).toBe(1)
    clock += 2_000
    await resolver.resolveClient(doc.url)
    expect(doc.hits()).toBe(2)
  })

  it('fetches a failed document again at once, however soon', async () => {
    const doc = documentUrl()
    await expect(resolver.resolveClient(doc.url)).rejects.toThrow('answered 404')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    clock += 1_000
    expect((await resolver.resolveClient(doc.url)).name).toBe('Document Client')
    expect(doc.hits()).toBe(2)
  })

  it('keeps an error answer only as long as its own max-age says', async () => {
    const doc = documentUrl()
    doc.serve(() => new Response('gone', { status: 404, headers: { 'cache-control': 'public, max-age=30' } }))
    await expect(resolver.resolveClient(doc.url)).rejects.toThrow('answered 404')
    doc.serve(() => Response.json(clientDocument(doc.url)))
    clock += 29_000
    await expect(resolver.resolveClient(doc.url)).rejects.toThrow('answered 404')
    expect(doc.hits()).toBe(1)
    clock += 2_000
    expect((await resolver.resolveClient(doc.url)).name).toBe('Document Client')
    expect(doc.hits()).toBe(2)
  })

  it('fetches a document once for requests that arrive together', async () => {
    const doc = documentUrl()
    // A slow answer, so the three requests are all waiting while the one fetch is under way.
    doc.serve(async () => {
      await Bun.sleep(300)
      return Response.json(clientDocument(doc.url), { headers: { 'cache-control': 'no-store' } })
    })
    const rows = await Promise.all([1, 2, 3].map(() => resolver.resolveClient(doc.url)))
    expect(rows.map((row) => row.id)).toEqual([doc.url, doc.url, doc.url])
    expect(doc.hits()).toBe(1)
  })
})
