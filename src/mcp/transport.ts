/**
 * Where `/mcp` meets the MCP SDK's serving API (`@modelcontextprotocol/server` v2): Gatehouse's own
 * tools are built from plain JSON Schema and served here; `extend` lets the aggregated upstreams
 * (`src/aggregate/serve.ts`) add theirs to the same per-request server.
 */
import {
  createMcpHandler,
  fromJsonSchema,
  McpServer,
  preloadSchemas,
  type AuthInfo,
  type CallToolResult,
  type ServerContext,
  type StandardSchemaWithJSON,
  type ToolAnnotations,
} from '@modelcontextprotocol/server'
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/server/validators/ajv'

export type { CallToolResult, ToolAnnotations }

/**
 * One JSON Schema validator for the process. Compiling a schema costs hundreds of microseconds and
 * the validator caches compiled schemas by object identity, so schemas are compiled once, at
 * module load, and shared by the per-request server instances.
 */
const validator = new AjvJsonSchemaValidator()

export type JsonSchema = Record<string, unknown>

/** A tool's JSON Schema compiled once for the process. */
export function compileSchema(schema: JsonSchema): StandardSchemaWithJSON {
  return fromJsonSchema(schema as Parameters<typeof fromJsonSchema>[0], validator) as StandardSchemaWithJSON
}

export interface ToolDefinition<Context> {
  name: string
  title: string
  description: string
  input: StandardSchemaWithJSON
  output: StandardSchemaWithJSON
  annotations: ToolAnnotations
  run: (context: Context, args: Record<string, unknown>) => Promise<CallToolResult>
}

export interface McpEndpointOptions<Context> {
  name: string
  version: string
  maxBodyBytes: number
  /** The tools a caller may see: resolved per request from the context. */
  toolsFor: (context: Context) => readonly ToolDefinition<Context>[]
  /** Adds what else the caller may use to the per-request server, before it serves the request. */
  extend?: (server: McpServer, context: Context) => void | Promise<void>
  /** Checks a `requestState` echoed by a 2026 client (see `createRequestStateCodec`). */
  verifyRequestState?: (state: string, ctx: ServerContext) => Promise<unknown>
  onError?: (error: Error) => void
}

/**
 * A Streamable HTTP endpoint serving the 2026-07-28 revision and, statelessly, the 2025 revisions
 * (2025-03-26, 2025-06-18, 2025-11-25). Stateless means no session lives in this process, so any
 * replica answers any request. The caller's context rides in `authInfo.extra`.
 */
export function createMcpEndpoint<Context>(options: McpEndpointOptions<Context>) {
  const handler = createMcpHandler(
    async ({ authInfo }) => {
      const context = authInfo?.extra?.context as Context
      const server = new McpServer(
        { name: options.name, version: options.version },
        {
          jsonSchemaValidator: validator,
          capabilities: { tools: { listChanged: true } },
          ...(options.verifyRequestState ? { requestState: { verify: options.verifyRequestState } } : {}),
        },
      )
      for (const tool of options.toolsFor(context))
        server.registerTool(
          tool.name,
          {
            title: tool.title,
            description: tool.description,
            inputSchema: tool.input,
            outputSchema: tool.output,
            annotations: tool.annotations,
          },
          (args: unknown) => tool.run(context, args as Record<string, unknown>),
        )
      await options.extend?.(server, context)
      return server
    },
    { legacy: 'stateless', maxRequestBodySize: options.maxBodyBytes, onerror: options.onError },
  )
  return {
    handle(
      request: Request,
      auth: { token: string; clientId: string; scopes: string[]; expiresAt?: number },
      context: Context,
      parsedBody?: unknown,
    ) {
      const authInfo: AuthInfo = { ...auth, extra: { context } }
      return handler.fetch(request, parsedBody === undefined ? { authInfo } : { authInfo, parsedBody })
    },
    /** Tells 2026 clients listening with `subscriptions/listen` that the lists changed. */
    listsChanged() {
      handler.notify.toolsChanged()
      handler.notify.promptsChanged()
      handler.notify.resourcesChanged()
    },
    close: () => handler.close(),
  }
}

/** Warms the SDK's own schemas so the first request after start-up is not the slow one. */
export function warmUpMcp(): void {
  preloadSchemas()
}
