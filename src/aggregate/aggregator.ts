/**
 * The aggregated `/mcp` (DESIGN.md, "Serving upstreams"): for each user, the tools, prompts and
 * resources of every upstream of their `/mcp`, named so they cannot collide, with a route table
 * that sends each call to its server with the user's own credential. Lists come from the
 * per-credential list cache and are fetched from all upstreams in parallel, each capped in time,
 * so one slow or dead upstream never delays or empties the list. A user's view is rebuilt when a
 * list, a server, a connection or a selection changes, and at the latest after a few seconds
 * (what another replica changed).
 */
import type {
  Client,
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  Tool,
} from '@modelcontextprotocol/client'
import type { Principal } from '../auth/index.ts'
import type { McpServerRow } from '../db/schema.ts'
import type { AppDeps } from '../deps.ts'
import { createOutboundFetch, outboundPolicyOf } from '../http/outbound.ts'
import { connectLinkOf } from '../upstreams/connections-page.ts'
import { type AggregatedServer, aggregatedServers } from '../upstreams/upstream.service.ts'
import { type FetchedList, ListCache, type ListKind } from './list-cache.ts'
import {
  connectToolName,
  exposedName,
  isAcceptableUpstreamName,
  MAX_TOOL_NAME_LENGTH,
  passesLists,
  wrapResourceUri,
  wrapUriTemplate,
} from './names.ts'
import { ServerHealth } from './server-health.ts'
import { credentialKeyOf, UpstreamPool } from './upstream-pool.ts'

/** How long a user's assembled view is reused before the database is asked again. */
const VIEW_TTL_MS = 5000
/** The longest one upstream may hold up a list; past it, its last good list is used or it is left out. */
const LIST_CAP_MS = 5000
/** How long upstream `list_changed` notifications are gathered before clients are told. */
export const LIST_CHANGED_DEBOUNCE_MS = 250

export type ToolRoute =
  | { kind: 'upstream'; server: McpServerRow; upstreamName: string; definition: Tool }
  /** The `<slug>__connect` tool of a server the user has not connected. */
  | { kind: 'connect'; server: McpServerRow; definition: Tool }
  /** A tool of a server the user must connect (known from before): calling it asks them to connect. */
  | { kind: 'connect_required'; server: McpServerRow; upstreamName: string }
  /** A name of a server whose tools cannot be listed now: calling it says why. */
  | { kind: 'unavailable'; server: McpServerRow; reason: string }

export interface UserView {
  servers: AggregatedServer[]
  /** The listed tools, upstream and connect tools, in a deterministic order. */
  tools: Tool[]
  routes: Map<string, ToolRoute>
  /** `tools` as JSON (the members of an array, no brackets), for answering `tools/list` without serialising again. */
  toolsJson: string
}

interface CachedServers {
  servers: Promise<AggregatedServer[]>
  expiresAt: number
  generation: number
}

interface CachedView {
  view: Promise<UserView>
  expiresAt: number
  generation: number
  listVersion: number
}

export class Aggregator {
  readonly pool: UpstreamPool
  private readonly lists = new ListCache()
  private readonly views = new Map<string, CachedView>()
  private readonly serverSets = new Map<string, CachedServers>()
  private generation = 0
  private readonly listeners = new Set<() => void>()
  private readonly unsubscribe: () => void
  private changedKeys = new Set<string>()
  private listChangedTimer: ReturnType<typeof setTimeout> | undefined
  private readonly health: ServerHealth

  constructor(
    private readonly deps: AppDeps,
    version: string,
  ) {
    const { config, outboundCapacity } = deps
    const limits = {
      connectTimeoutMs: config.upstreamTimeoutSeconds * 1000,
      totalTimeoutMs: Number.POSITIVE_INFINITY,
      maxResponseBytes: Number.POSITIVE_INFINITY,
    }
    this.health = new ServerHealth(deps.db, deps.logger)
    this.pool = new UpstreamPool({
      deps,
      fetch: createOutboundFetch(outboundPolicyOf(config), limits, outboundCapacity),
      cappedFetch: createOutboundFetch(
        outboundPolicyOf(config),
        { ...limits, maxResponseBytes: config.upstreamMaxResponseBytes },
        outboundCapacity,
      ),
      capacity: outboundCapacity,
      maxMessageBytes: config.upstreamMaxResponseBytes,
      version,
      publicUrl: config.publicUrl,
      requestTimeoutMs: config.upstreamTimeoutSeconds * 1000,
      onListChanged: (key) => this.listChanged(key),
      tracing: deps.tracing,
    })
    this.unsubscribe = deps.events.subscribe((event) => {
      if (event.kind === 'credentials_revoked') return
      this.generation++
      this.views.clear()
      this.serverSets.clear()
      // A server's edit concerns every connection to it; a user's (re)connection, theirs only.
      if (event.kind === 'server_changed' || event.kind === 'connection_changed') {
        const server = `${event.serverId}@`
        const userId = event.kind === 'connection_changed' ? event.userId : undefined
        const concerned = (key: string) =>
          key.startsWith(server) && (userId === undefined || key.endsWith(`/${userId}`))
        this.lists.invalidate(concerned)
        this.pool.dropWhere(concerned)
      }
      this.changed()
    })
  }

  /** Hears whenever a user's lists may have changed (to tell listening 2026 clients). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.unsubscribe()
    clearTimeout(this.listChangedTimer)
    await this.pool.close()
  }

  /**
   * An upstream said a list changed. Notifications are gathered for a moment before the lists are
   * dropped and listening clients told, so a flood of them costs one rebuild, not one each.
   */
  private listChanged(key: string): void {
    this.changedKeys.add(key)
    if (this.listChangedTimer) return
    this.listChangedTimer = setTimeout(() => {
      this.listChangedTimer = undefined
      const keys = this.changedKeys
      this.changedKeys = new Set()
      this.lists.invalidate((candidate) => keys.has(candidate))
      this.changed()
    }, LIST_CHANGED_DEBOUNCE_MS)
    ;(this.listChangedTimer as { unref?: () => void }).unref?.()
  }

  /**
   * The servers of the user's `/mcp` and whether each is ready or must be connected: the database's
   * part of the view, for what needs no tool list (initialize, prompts, resources).
   */
  servers(principal: Principal): Promise<AggregatedServer[]> {
    const now = Date.now()
    const cached = this.serverSets.get(principal.user.id)
    if (cached && cached.expiresAt > now && cached.generation === this.generation) return cached.servers
    const servers = aggregatedServers(this.deps, principal)
    const entry = { servers, expiresAt: now + VIEW_TTL_MS, generation: this.generation }
    if (this.serverSets.size >= 10_000) this.serverSets.clear()
    this.serverSets.set(principal.user.id, entry)
    servers.catch(() => {
      if (this.serverSets.get(principal.user.id) === entry) this.serverSets.delete(principal.user.id)
    })
    return servers
  }

  /** The user's aggregated tools and their routes. */
  view(principal: Principal): Promise<UserView> {
    const now = Date.now()
    const cached = this.views.get(principal.user.id)
    if (
      cached &&
      cached.expiresAt > now &&
      cached.generation === this.generation &&
      cached.listVersion === this.lists.version
    )
      return cached.view
    const generation = this.generation
    const view = this.buildView(principal)
    const entry = { view, expiresAt: now + VIEW_TTL_MS, generation, listVersion: this.lists.version }
    if (this.views.size >= 10_000) this.views.clear()
    this.views.set(principal.user.id, entry)
    // A view that failed is not kept. One built while lists changed is rebuilt on next use, as
    // its list version is the one from before.
    view.catch(() => {
      if (this.views.get(principal.user.id) === entry) this.views.delete(principal.user.id)
    })
    return view
  }

  /** The upstream's own tool list for one user's credential (the admin API's policy view). */
  async upstreamTools(server: McpServerRow, principal: Principal): Promise<Tool[]> {
    const client = await this.pool.client(server, principal.user)
    return (await client.listTools(undefined, { cacheMode: 'bypass' })).tools
  }

  async prompts(principal: Principal): Promise<{ prompts: Prompt[]; routes: Map<string, [McpServerRow, string]> }> {
    const routes = new Map<string, [McpServerRow, string]>()
    const prompts: Prompt[] = []
    for (const [server, items] of await this.listAll(principal, 'prompts')) {
      const passes = policyOf(server)
      for (const prompt of items as Prompt[]) {
        if (!passes(prompt.name)) continue
        const name = exposedName(server.slug, prompt.name)
        if (routes.has(name)) continue
        routes.set(name, [server, prompt.name])
        prompts.push({ ...prompt, name, title: `${prompt.title ?? prompt.name} (${server.display_name})` })
      }
    }
    return { prompts, routes }
  }

  async resources(principal: Principal): Promise<Resource[]> {
    return (await this.listAll(principal, 'resources')).flatMap(([server, items]) => {
      const passes = policyOf(server)
      return (items as Resource[])
        .filter((resource) => passes(resource.name))
        .map((resource) => ({ ...resource, uri: wrapResourceUri(server.slug, resource.uri) }))
    })
  }

  async resourceTemplates(principal: Principal): Promise<ResourceTemplate[]> {
    return (await this.listAll(principal, 'resourceTemplates')).flatMap(([server, items]) => {
      const passes = policyOf(server)
      return (items as ResourceTemplate[])
        .filter((template) => passes(template.name))
        .map((template) => ({ ...template, uriTemplate: wrapUriTemplate(server.slug, template.uriTemplate) }))
    })
  }

  /**
   * Whether the server's allow and deny lists let the user read a resource: a listed resource by
   * its name; one that is not listed (read through a template) only when there is no allow list,
   * since its name is unknown.
   */
  async mayReadResource(principal: Principal, server: McpServerRow, uri: string): Promise<boolean> {
    const allow: string[] = JSON.parse(server.tool_allow_list)
    const deny: string[] = JSON.parse(server.tool_deny_list)
    if (allow.length === 0 && deny.length === 0) return true
    const [listed] = await this.listEach(principal, [server], 'resources')
    const resource = (listed?.[1] as Resource[] | undefined)?.find((candidate) => candidate.uri === uri)
    return resource ? passesLists(resource.name, allow, deny) : allow.length === 0
  }

  /** A ready server of the user's `/mcp` by slug (for routing resources). */
  async readyServer(principal: Principal, slug: string): Promise<McpServerRow | undefined> {
    return (await this.servers(principal)).find((entry) => entry.status === 'ready' && entry.row.slug === slug)?.row
  }

  connectLink(server: McpServerRow): string {
    return connectLinkOf(this.deps.config.publicUrl, server.id)
  }

  /** An upstream broke a cap answering a call: its admins see why. */
  recordFailure(server: McpServerRow, reason: string): void {
    this.health.failed(server, reason)
  }

  /** An upstream call failed in a way that may be the connection's: the next call connects afresh. */
  dropConnection(server: McpServerRow, principal: Principal): void {
    this.pool.drop(server, principal.user.id)
  }

  private changed(): void {
    for (const listener of this.listeners) listener()
  }

  private async buildView(principal: Principal): Promise<UserView> {
    const servers = await this.servers(principal)
    const ready = servers.filter((entry) => entry.status === 'ready').map((entry) => entry.row)
    const lists = new Map(await this.listEach(principal, ready, 'tools'))
    const tools: Tool[] = []
    const routes = new Map<string, ToolRoute>()
    for (const { row: server, status } of servers) {
      const passes = policyOf(server)
      if (status === 'connect') {
        const name = connectToolName(server.slug)
        const definition = connectTool(name, server)
        routes.set(name, { kind: 'connect', server, definition })
        tools.push(definition)
        // Tools known from before the user's sign-in lapsed ask them to reconnect when called.
        for (const tool of this.lastKnown(server, principal) ?? []) {
          const exposed = exposedName(server.slug, tool.name)
          if (passes(tool.name) && !routes.has(exposed))
            routes.set(exposed, { kind: 'connect_required', server, upstreamName: tool.name })
        }
        continue
      }
      const upstreamTools = (lists.get(server) as Tool[] | undefined) ?? []
      for (const tool of upstreamTools) {
        if (typeof tool?.name !== 'string' || !passes(tool.name)) continue
        const name = exposedName(server.slug, tool.name)
        if (routes.has(name)) continue
        const definition = { ...tool, name, title: `${tool.title ?? tool.name} (${server.display_name})` }
        routes.set(name, { kind: 'upstream', server, upstreamName: tool.name, definition })
        tools.push(definition)
      }
    }
    return { servers, tools, routes, toolsJson: tools.map((tool) => JSON.stringify(tool)).join(',') }
  }

  /**
   * The route of a called name, or, for a name the table does not hold but that begins with
   * `<slug>__` of a server in the user's view, what that server's state says: it must be
   * connected, or its tools cannot be listed now (and why). Only a miss pays for the lookup;
   * a name of a server that listed its tools and has no such tool stays unknown.
   */
  routeOf(principal: Principal, view: UserView, name: string): ToolRoute | undefined {
    const route = view.routes.get(name)
    if (route) return route
    const entry = view.servers.find(({ row }) => name.startsWith(`${row.slug}__`))
    if (!entry) return undefined
    const { row: server } = entry
    if (entry.status === 'connect') return { kind: 'connect_required', server, upstreamName: name }
    const reason = this.lists.unavailable(credentialKeyOf(server, principal.user.id), 'tools')
    return reason === undefined ? undefined : { kind: 'unavailable', server, reason }
  }

  /** The tools the lists last held for this user's credential, if any (used while they must reconnect). */
  private lastKnown(server: McpServerRow, principal: Principal): Tool[] | undefined {
    return this.lists.peek(credentialKeyOf(server, principal.user.id), 'tools') as Tool[] | undefined
  }

  private async listAll(principal: Principal, kind: ListKind): Promise<[McpServerRow, unknown[]][]> {
    const ready = (await this.servers(principal)).filter((entry) => entry.status === 'ready').map((entry) => entry.row)
    return this.listEach(principal, ready, kind)
  }

  /** One list of each server, fetched in parallel, each within the cap; servers without one are left out. */
  private async listEach(
    principal: Principal,
    servers: McpServerRow[],
    kind: ListKind,
  ): Promise<[McpServerRow, unknown[]][]> {
    const lists = await Promise.all(
      servers.map(async (server) => {
        const items = await this.lists.get(
          credentialKeyOf(server, principal.user.id),
          kind,
          () => this.fetchList(server, principal, kind),
          {
            capMs: Math.min(LIST_CAP_MS, this.deps.config.upstreamTimeoutSeconds * 1000),
            onFailure: (error) => {
              this.pool.drop(server, principal.user.id)
              const message = error instanceof Error ? error.message : String(error)
              this.deps.logger.warn('upstream list failed', { server: server.slug, list: kind, error: message })
              this.health.failed(server, `listing its ${kind} failed: ${message}`)
            },
          },
        )
        return items ? ([server, items] as [McpServerRow, unknown[]]) : undefined
      }),
    )
    return lists.filter((entry) => entry !== undefined)
  }

  /**
   * One list from the upstream, refused as a whole when it holds more entries than allowed, with
   * entries whose name is not a string of at most `MAX_TOOL_NAME_LENGTH` characters dropped
   * (and logged), so nothing downstream works on names an upstream made huge.
   */
  private async fetchList(server: McpServerRow, principal: Principal, kind: ListKind): Promise<FetchedList> {
    const fetched = await this.fetchListUnchecked(server, principal, kind)
    const { upstreamMaxListItems } = this.deps.config
    if (fetched.items.length > upstreamMaxListItems)
      throw new Error(`it listed ${fetched.items.length} ${kind}, more than the ${upstreamMaxListItems} allowed`)
    const items = fetched.items.filter((item) => isAcceptableUpstreamName((item as { name?: unknown })?.name))
    if (items.length < fetched.items.length)
      this.deps.logger.warn('upstream list entries dropped', {
        server: server.slug,
        list: kind,
        dropped: fetched.items.length - items.length,
        reason: `a name that is not a string of 1 to ${MAX_TOOL_NAME_LENGTH} characters`,
      })
    this.health.succeeded(server)
    return { items, ttlMs: fetched.ttlMs }
  }

  private async fetchListUnchecked(server: McpServerRow, principal: Principal, kind: ListKind): Promise<FetchedList> {
    const client = await this.pool.client(server, principal.user)
    const capabilities = client.getServerCapabilities() ?? {}
    const options = { cacheMode: 'bypass' as const, timeout: this.deps.config.upstreamTimeoutSeconds * 1000 }
    const ttl = (result: object) => (result as { ttlMs?: number }).ttlMs
    switch (kind) {
      case 'tools': {
        if (!capabilities.tools) return { items: [] }
        const result = await client.listTools(undefined, options)
        return { items: result.tools, ttlMs: ttl(result) }
      }
      case 'prompts': {
        if (!capabilities.prompts) return { items: [] }
        const result = await client.listPrompts(undefined, options)
        return { items: result.prompts, ttlMs: ttl(result) }
      }
      case 'resources': {
        if (!capabilities.resources) return { items: [] }
        const result = await client.listResources(undefined, options)
        return { items: result.resources, ttlMs: ttl(result) }
      }
      case 'resourceTemplates': {
        if (!capabilities.resources) return { items: [] }
        const result = await client.listResourceTemplates(undefined, options)
        return { items: result.resourceTemplates, ttlMs: ttl(result) }
      }
    }
  }

  /** The connected client for a route's server (connecting it on first use). */
  clientFor(server: McpServerRow, principal: Principal): Promise<Client> {
    return this.pool.client(server, principal.user)
  }
}

/** Whether a server's allow and deny lists let a tool through, the lists read once. */
function policyOf(server: McpServerRow): (name: string) => boolean {
  const allow: string[] = JSON.parse(server.tool_allow_list)
  const deny: string[] = JSON.parse(server.tool_deny_list)
  return (name) => passesLists(name, allow, deny)
}

function connectTool(name: string, server: McpServerRow): Tool {
  return {
    name,
    title: `Connect ${server.display_name}`,
    description: `${server.display_name} needs you to sign in before its tools are available here. Call this tool for the link to open; after connecting, its tools appear in the tool list.`,
    inputSchema: { type: 'object', properties: {} },
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }
}
