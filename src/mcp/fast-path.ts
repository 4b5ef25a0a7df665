import { memoizedByValue } from '../http/headers.ts'
import type { McpContext, GatehouseTool } from './tools.ts'
import type { CallToolResult } from './transport.ts'

/**
 * The hot path of an MCP gateway is `tools/call`. For a well-formed, stateless call of a known
 * tool with valid arguments, answering it here costs a few microseconds; building a per-request
 * SDK server to do the same costs tens. Everything else (initialize, discovery, tools/list,
 * notifications, batches, malformed or mismatched envelopes, invalid arguments) goes to the SDK,
 * which owns the protocol's error answers. The responses are byte-for-byte what the SDK sends
 * (the tests compare the two).
 */
export const LEGACY_VERSIONS = new Set(['2025-03-26', '2025-06-18', '2025-11-25'])
export const MODERN_VERSION = '2026-07-28'
const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion'
const CLIENT_CAPABILITIES_KEY = 'io.modelcontextprotocol/clientCapabilities'

export interface ToolCall {
  era: 'legacy' | 'modern'
  id: string | number
  name: string
  args: Record<string, unknown>
}

type Message = {
  jsonrpc?: unknown
  id?: unknown
  method?: unknown
  params?: { name?: unknown; arguments?: unknown; _meta?: Record<string, unknown> }
}

const MESSAGE_KEYS = new Set(['jsonrpc', 'id', 'method', 'params'])
const PARAMS_KEYS = new Set(['name', 'arguments', '_meta'])

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Both media types named outright, as the SDK requires of 2025-era clients. */
const acceptsBothTypes = memoizedByValue((accept: string) => {
  const types = accept.split(',').map((part) => part.split(';')[0].trim().toLowerCase())
  return types.includes('application/json') && types.includes('text/event-stream')
})
const acceptsBoth = (accept: string | null) => acceptsBothTypes(accept ?? '')

/**
 * Recognises a single stateless `tools/call` this path can answer; anything else is undefined.
 * Deliberately narrow: whatever is unusual (extra members, odd ids, null arguments, a loose
 * Accept) is left to the SDK, whose answer is the reference.
 */
export function recogniseToolCall(headers: Headers, body: unknown): ToolCall | undefined {
  if (!isPlainObject(body) || !Object.keys(body).every((key) => MESSAGE_KEYS.has(key))) return undefined
  const message = body as Message
  if (message.jsonrpc !== '2.0' || message.method !== 'tools/call') return undefined
  if (typeof message.id !== 'string' && !Number.isSafeInteger(message.id)) return undefined
  const params = message.params
  if (!isPlainObject(params) || !Object.keys(params).every((key) => PARAMS_KEYS.has(key))) return undefined
  if (typeof params.name !== 'string') return undefined
  const args = params.arguments === undefined ? {} : params.arguments
  if (!isPlainObject(args)) return undefined
  if (!/^application\/json\b/i.test(headers.get('content-type') ?? '') || !acceptsBoth(headers.get('accept')))
    return undefined

  const version = headers.get('mcp-protocol-version')
  const meta = params._meta
  if (meta !== undefined && (typeof meta !== 'object' || meta === null)) return undefined
  if (meta?.[PROTOCOL_VERSION_KEY] !== undefined) {
    // 2026-07-28: the per-request envelope, agreeing with the routing headers.
    if (meta[PROTOCOL_VERSION_KEY] !== MODERN_VERSION || version !== MODERN_VERSION) return undefined
    if (typeof meta[CLIENT_CAPABILITIES_KEY] !== 'object' || meta[CLIENT_CAPABILITIES_KEY] === null) return undefined
    if (headers.get('mcp-method') !== 'tools/call' || headers.get('mcp-name') !== params.name) return undefined
    return { era: 'modern', id: message.id as string | number, name: params.name, args }
  }
  if (version !== null && !LEGACY_VERSIONS.has(version)) return undefined
  return { era: 'legacy', id: message.id as string | number, name: params.name, args }
}

/** Runs the tool and answers as the SDK would, or returns undefined to let the SDK answer (invalid arguments). */
export async function answerToolCall(
  call: ToolCall,
  tool: GatehouseTool,
  context: McpContext,
  serverInfo: { name: string; version: string },
): Promise<Response | undefined> {
  const checked = await tool.input['~standard'].validate(call.args)
  if ('issues' in checked && checked.issues) return undefined
  let result: CallToolResult & Record<string, unknown>
  try {
    result = await tool.run(context, call.args)
  } catch (error) {
    result = {
      content: [{ type: 'text', text: error instanceof Error ? error.message : String(error) }],
      isError: true,
    }
  }
  if (call.era === 'modern') {
    const body = JSON.stringify({
      result: { ...result, resultType: 'complete', _meta: { 'io.modelcontextprotocol/serverInfo': serverInfo } },
      jsonrpc: '2.0',
      id: call.id,
    })
    return new Response(body, { headers: { 'content-type': 'application/json' } })
  }
  return sseMessage(JSON.stringify({ result, jsonrpc: '2.0', id: call.id }))
}

export interface ListCall {
  era: 'legacy' | 'modern'
  id: string | number
}

/** Recognises a single `tools/list` without a cursor, as plainly as `recogniseToolCall` does calls. */
export function recogniseToolsList(headers: Headers, body: unknown): ListCall | undefined {
  if (!isPlainObject(body) || !Object.keys(body).every((key) => MESSAGE_KEYS.has(key))) return undefined
  const message = body as Message
  if (message.jsonrpc !== '2.0' || message.method !== 'tools/list') return undefined
  if (typeof message.id !== 'string' && !Number.isSafeInteger(message.id)) return undefined
  const params = message.params as Record<string, unknown> | undefined
  if (params !== undefined && (!isPlainObject(params) || !Object.keys(params).every((key) => key === '_meta')))
    return undefined
  if (!/^application\/json\b/i.test(headers.get('content-type') ?? '') || !acceptsBoth(headers.get('accept')))
    return undefined
  const version = headers.get('mcp-protocol-version')
  const meta = params?._meta as Record<string, unknown> | undefined
  if (meta !== undefined && !isPlainObject(meta)) return undefined
  if (meta?.[PROTOCOL_VERSION_KEY] !== undefined) {
    if (meta[PROTOCOL_VERSION_KEY] !== MODERN_VERSION || version !== MODERN_VERSION) return undefined
    if (!isPlainObject(meta[CLIENT_CAPABILITIES_KEY])) return undefined
    if (headers.get('mcp-method') !== 'tools/list') return undefined
    return { era: 'modern', id: message.id as string | number }
  }
  if (version !== null && !LEGACY_VERSIONS.has(version)) return undefined
  return { era: 'legacy', id: message.id as string | number }
}

/** A tool as `tools/list` shows it, in the SDK's member order. */
export function listedTool(tool: GatehouseTool): Record<string, unknown> {
  const schema = (standard: GatehouseTool['input'], io: 'input' | 'output') =>
    standard['~standard'].jsonSchema[io]({ target: 'draft-2020-12' })
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: schema(tool.input, 'input'),
    annotations: tool.annotations,
    outputSchema: schema(tool.output, 'output'),
  }
}

/** A `tools/list` answer in one era, encoded once, around the place of the request's id. */
export interface ListAnswerParts {
  era: 'legacy' | 'modern'
  before: Uint8Array<ArrayBuffer>
  after: Uint8Array<ArrayBuffer>
}

const encoder = new TextEncoder()

/**
 * Encodes the answer to `tools/list` for pre-serialised tools (`toolsJson`: the array's members,
 * comma-separated), once per list and era: a list of hundreds of tools is a large string, and
 * building and encoding it again for every request is most of what a warm list costs.
 */
export function toolsListParts(
  era: 'legacy' | 'modern',
  toolsJson: string,
  serverInfo: { name: string; version: string },
): ListAnswerParts {
  const [before, after] =
    era === 'modern'
      ? [
          `{"result":{"tools":[${toolsJson}],"resultType":"complete","ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":${JSON.stringify(serverInfo)}}},"jsonrpc":"2.0","id":`,
          '}',
        ]
      : [`event: message\ndata: {"result":{"tools":[${toolsJson}]},"jsonrpc":"2.0","id":`, '}\n\n']
  return { era, before: encoder.encode(before), after: encoder.encode(after) }
}

/** `tools/list` answered from its encoded parts, as the SDK answers it. */
export function answerToolsList(call: ListCall, parts: ListAnswerParts): Response {
  const body = new Blob([parts.before, JSON.stringify(call.id), parts.after])
  if (call.era === 'modern') return new Response(body, { headers: { 'content-type': 'application/json' } })
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
  })
}

/** One JSON-RPC message as the SDK answers a 2025-era POST: a one-event SSE stream. */
export function sseMessage(json: string): Response {
  return new Response(`event: message\ndata: ${json}\n\n`, {
    headers: {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
  })
}
