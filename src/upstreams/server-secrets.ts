import type { Kysely } from 'kysely'
import type { EventBus } from '../events/bus.ts'
import type { Config } from '../config.ts'
import type { Database, McpServerRow } from '../db/schema.ts'
import type { OutboundFetch } from '../http/outbound.ts'
import type { Logger } from '../ops/logger.ts'
import type { Keyring } from '../secrets/keyring.ts'
import { openValue } from '../secrets/sealed-column.ts'

export interface UpstreamDeps {
  db: Kysely<Database>
  config: Config
  logger: Logger
  keyring: Keyring
  outboundFetch: OutboundFetch
  /** The change feed, told of every server, connection and selection change. */
  events: EventBus
}

/** The binding of a server's sealed column (see secrets/sealed-column.ts). */
export const sealing = (serverId: string, column: 'oauth2_client_secret' | 'api_key_value' | 'custom_headers') => ({
  table: 'mcp_servers',
  column,
  rowKey: serverId,
})

/** Opens a server's sealed columns, for the code that calls upstreams. */
export async function openServerSecrets(keyring: Keyring, row: McpServerRow) {
  const open = async (column: 'oauth2_client_secret' | 'api_key_value' | 'custom_headers') => {
    const stored = row[column]
    return stored === null ? undefined : openValue(keyring, sealing(row.id, column), stored)
  }
  const headers = await open('custom_headers')
  return {
    oauth2ClientSecret: await open('oauth2_client_secret'),
    apiKeyValue: await open('api_key_value'),
    customHeaders: headers === undefined ? {} : (JSON.parse(headers) as Record<string, string>),
  }
}
