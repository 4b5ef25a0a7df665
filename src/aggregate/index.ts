import type { Principal } from '../auth/index.ts'
import type { AppDeps } from '../deps.ts'
import { ApiError } from '../http/errors.ts'
import { findVisibleServer } from '../upstreams/upstream.service.ts'
import { Aggregator } from './aggregator.ts'
import { exposedName, passesLists } from './names.ts'
import { credentialProblemOf } from './upstream-pool.ts'

export const GATEHOUSE_VERSION = '0.1.0'

const aggregators = new WeakMap<AppDeps, Aggregator>()

/** The one aggregator of an app: `/mcp` and the admin API share its connections and lists. */
export function aggregatorOf(deps: AppDeps): Aggregator {
  let aggregator = aggregators.get(deps)
  if (!aggregator) {
    aggregator = new Aggregator(deps, GATEHOUSE_VERSION)
    aggregators.set(deps, aggregator)
  }
  return aggregator
}

/** Closes the app's upstream connections (2025 sessions included), if any were opened. */
export async function closeAggregator(deps: AppDeps): Promise<void> {
  const aggregator = aggregators.get(deps)
  aggregators.delete(deps)
  await aggregator?.close()
}

/**
 * `GET /api/v1/mcp/servers/{id}/tools`: the upstream's tools as it lists them to the admin's own
 * credential, each with its name in `/mcp` and whether the allow and deny lists let it through,
 * so lists can be written from real names. Asks the upstream every time (no cache).
 */
export async function toolPolicyOf(deps: AppDeps, principal: Principal, id: string) {
  const { row } = await findVisibleServer(deps, principal, id, 'manage')
  // The preview asks with the caller's own credential: where that is theirs (a sign-in, an
  // identity-provider token, identity headers), only for an organization they belong to.
  if (row.auth_type === 'oauth2' || row.auth_type === 'user_oidc' || row.forward_identity_headers === 1)
    await findVisibleServer(deps, principal, id, 'use')
  const aggregator = aggregatorOf(deps)
  let tools: Awaited<ReturnType<Aggregator['upstreamTools']>>
  try {
    tools = await aggregator.upstreamTools(row, principal)
  } catch (error) {
    if (credentialProblemOf(error))
      throw new ApiError(
        409,
        `Connect ${row.display_name} first: its tools are listed with your own credential (${aggregator.connectLink(row)})`,
      )
    aggregator.dropConnection(row, principal)
    const cause = error instanceof Error ? error.message : String(error)
    throw new ApiError(502, `${row.display_name} did not list its tools: ${cause}`)
  }
  const allow: string[] = JSON.parse(row.tool_allow_list)
  const deny: string[] = JSON.parse(row.tool_deny_list)
  return {
    server_id: row.id,
    slug: row.slug,
    tool_allow_list: allow,
    tool_deny_list: deny,
    tools: tools.map((tool) => ({
      name: tool.name,
      mcp_name: exposedName(row.slug, tool.name),
      allowed: passesLists(tool.name, allow, deny),
      title: tool.title ?? null,
      description: tool.description ?? null,
    })),
  }
}
