import { afterEach, beforeEach, describe, expect, it } from 'bun:test'
import { Database } from 'bun:sqlite'
import { sql } from 'kysely'
import { join } from 'node:path'
import { openDatabase } from '../../src/db/index.ts'
import { createTempDir } from '../fixtures/cli-process.ts'
import { obtainTokens, REDIRECT_URI, registerClient } from '../oauth/helpers.ts'
import { API_RESOURCE } from '../oauth/support-flow.ts'
import { bootstrapOwner, setup, type TestContext, usingPostgres } from '../setup.ts'

describe('SQLite transactions', () => {
  it('take the write lock when they begin, so a read-then-write cannot fail on a lock upgrade', async () => {
    const dir = createTempDir()
    const path = join(dir.path, 'gatehouse.db')
    const { db } = await openDatabase(`sqlite:${path}`)
    const other = new Database(path)
    try {
      other.exec('PRAGMA busy_timeout = 0')
      let otherWriter: string | undefined
      await db.transaction().execute(async () => {
        // No statement has run yet: a deferred BEGIN would hold no lock, an immediate one holds the write lock.
        try {
          other.exec('BEGIN IMMEDIATE')
          other.exec('ROLLBACK')
          otherWriter = 'got the write lock'
        } catch (error) {
          otherWriter = (error as Error).message
        }
      })
      expect(otherWriter).toContain('locked')
      other.exec('BEGIN IMMEDIATE')
      other.exec('ROLLBACK')
    } finally {
      other.close()
      await db.destroy()
      dir.remove()
    }
  })
})

/**
 * Makes every statement of `action` on `table` fail inside the database, the way a lost
 * connection or a constraint would half-way through a multi-statement change.
 */
async function failOn(ctx: TestContext, table: string, action: 'DELETE' | 'INSERT'): Promise<void> {
  if (usingPostgres) {
    await sql
      .raw(
        `CREATE FUNCTION fail_now() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql`,
      )
      .execute(ctx.db)
    await sql
      .raw(`CREATE TRIGGER fail_${table} BEFORE ${action} ON ${table} FOR EACH ROW EXECUTE FUNCTION fail_now()`)
      .execute(ctx.db)
  } else
    await sql
      .raw(
        `CREATE TRIGGER fail_${table} BEFORE ${action} ON ${table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
      )
      .execute(ctx.db)
}

describe('changes that span several rows are all or nothing', () => {
  let ctx: TestContext
  let owner: { id: string; token: string }
  beforeEach(async () => {
    ctx = await setup()
    owner = await bootstrapOwner(ctx)
  })
  afterEach(() => ctx.close())

  it("keeps a user's grant for a client when deleting its consent fails half-way", async () => {
    const { client, tokens } = await obtainTokens(ctx, owner.token, { scope: 'api', resource: API_RESOURCE })
    await failOn(ctx, 'oauth_consents', 'DELETE')
    const revoke = await ctx.api(owner.token).api.v1.users.me['oauth-grants']({ clientId: client.client_id }).delete()
    expect(revoke.status).toBe(500)
    // Nothing was revoked: the token still works, rather than a revoked grant beside a standing consent.
    expect((await ctx.api(tokens.access_token).api.v1.users.me.get()).status).toBe(200)
  })

  it('keeps a registration as it was when creating the secret of its RFC 7592 update fails', async () => {
    const registered = await registerClient(ctx, { client_name: 'Before' })
    await failOn(ctx, 'oauth_client_secrets', 'INSERT')
    const response = await ctx.app.handle(
      new Request(`http://localhost/oauth2/register/${registered.client_id}`, {
        method: 'PUT',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${registered.registration_access_token}`,
        },
        body: JSON.stringify({
          client_id: registered.client_id,
          client_name: 'After',
          redirect_uris: [REDIRECT_URI],
          token_endpoint_auth_method: 'client_secret_basic',
        }),
      }),
    )
    expect(response.status).toBe(500)
    const row = await ctx.db
      .selectFrom('oauth_clients')
      .selectAll()
      .where('id', '=', registered.client_id)
      .executeTakeFirstOrThrow()
    expect(row.name).toBe('Before')
    expect(row.token_endpoint_auth_method).toBe('none')
  })
})
