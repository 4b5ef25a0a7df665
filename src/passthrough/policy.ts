import { passesLists } from '../aggregate/names.ts'
import type { McpServerRow } from '../db/schema.ts'
import { readStreamWithin } from '../http/read-within.ts'
import { rewriteSseEvents } from '../runtime/sse-events.ts'

/**
 * A server's allow and deny lists on `/mcp/servers/{slug}`, so they hold on the passthrough as on
 * `/mcp` (DESIGN.md, "Fields": a non-empty allow list lets only its names through, then the deny
 * list removes). They judge tools, prompts and resources by name: a `tools/call` or `prompts/get`
 * of a refused name is answered by Gatehouse and never sent, and refused entries are taken out of
 * `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list` answers, JSON or
 * SSE. A `resources/read` names a URI, not a name, so it is not judged: telling which resource a
 * URI belongs to would take a list of the upstream's resources first.
 *
 * A server whose two lists are empty costs nothing here: its requests and answers pass unread.
 */

/** The most of one list answer (a JSON body, or one SSE event) held to take refused entries out. */
export const MAX_LIST_RESPONSE_BYTES = 8 * 1024 * 1024

export interface NameLists {
  readonly allow: readonly string[]
  readonly deny: readonly string[]
}

/** The answers the lists filter: which member of the result holds the entries, by request method. */
const LISTED = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
} as const
type ListedMember = (typeof LISTED)[keyof typeof LISTED]
const LISTED_MEMBERS = Object.values(LISTED)

/** The requests that name one thing the lists judge, by method. */
const NAMED = { 'tools/call': 'tool', 'prompts/get': 'prompt' } as const

/**
 * The JSON-RPC members read here. A case variant of one is refused: a parser that matches names
 * case-insensitively (Go's encoding/json) would read it where JSON.parse does not.
 */
const READ_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params', 'name'])

type JsonObject = Record<string, unknown>

/** What Gatehouse answers itself, instead of sending the request on. */
export interface Refusal {
  status: 200 | 400
  body: unknown
}

/** Which requests of a body are list requests whose answers to filter, by `JSON.stringify(id)`. */
export type ListRequests = Map<string, ListedMember>

/** The server's lists, or undefined when both are empty and there is nothing to apply. */
export function readNameLists(server: Pick<McpServerRow, 'tool_allow_list' | 'tool_deny_list'>): NameLists | undefined {
  if (server.tool_allow_list === '[]' && server.tool_deny_list === '[]') return undefined
  const lists: NameLists = { allow: JSON.parse(server.tool_allow_list), deny: JSON.parse(server.tool_deny_list) }
  return lists.allow.length === 0 && lists.deny.length === 0 ? undefined : lists
}

export interface Screening {
  /** Gatehouse's own answer: the request asks for something the lists refuse, so it is not sent. */
  refusal?: Response
  /** Takes what the lists refuse out of the upstream's answer; absent when no answer can need it. */
  filter?: (upstream: Response) => Promise<Response>
}

const UNSCREENED: Screening = Object.freeze({})

/**
 * What the lists mean for one passthrough request. Only a server with lists reads anything: the
 * (already buffered) body of a POST, to refuse or to note its list requests; a GET's stream, on
 * which an upstream replays the answers of a stream the client resumes (`Last-Event-ID`), is
 * filtered by the shape of each answer.
 */
export function screenRequest(
  server: Pick<McpServerRow, 'tool_allow_list' | 'tool_deny_list' | 'display_name'>,
  request: Request,
  body: Uint8Array | null,
): Screening {
  const lists = readNameLists(server)
  if (!lists) return UNSCREENED
  const name = server.display_name
  if (request.method === 'GET') return { filter: (upstream) => filterListResponse(upstream, 'any', lists, name) }
  if (!body || body.length === 0) return UNSCREENED
  const inspected = inspectRequest(body, lists, name, request.headers)
  if ('refusal' in inspected)
    return { refusal: Response.json(inspected.refusal.body, { status: inspected.refusal.status }) }
  if (inspected.lists.size === 0) return UNSCREENED
  return { filter: (upstream) => filterListResponse(upstream, inspected.lists, lists, name) }
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * A client's POST body, judged by the lists: refused, or sent on with its list requests noted.
 * The body must be unambiguous, since the upstream's parser, not this one, decides what runs:
 * UTF-8 JSON, every message an object, no member given twice or in two spellings, and the 2026
 * `Mcp-Method`/`Mcp-Name` headers (which an upstream may route by) agreeing with it.
 */
export function inspectRequest(
  body: Uint8Array,
  lists: NameLists,
  serverName: string,
  headers: Headers,
): { refusal: Refusal } | { lists: ListRequests } {
  let text: string
  let parsed: unknown
  try {
    text = strictDecoder.decode(body)
    parsed = JSON.parse(text)
  } catch {
    return invalid(-32700, 'Parse error: the body is not JSON in UTF-8')
  }
  const batch = Array.isArray(parsed)
  const messages = batch ? (parsed as unknown[]) : [parsed]
  if (!messages.every(isObject)) return invalid(-32600, 'Invalid Request: every JSON-RPC message must be an object')
  const ambiguous = findAmbiguousMember(text)
  if (ambiguous !== undefined)
    return invalid(
      -32600,
      `Invalid Request: the member "${ambiguous}" is given twice, or in another case than JSON-RPC and MCP spell it`,
    )
  const mismatch = findHeaderMismatch(batch ? undefined : (messages[0] as JsonObject), headers)
  if (mismatch) return invalid(-32600, `Invalid Request: ${mismatch}`)

  const listRequests: ListRequests = new Map()
  const refused = new Map<JsonObject, string>()
  for (const message of messages as JsonObject[]) {
    const method = message.method
    if (typeof method !== 'string') continue
    if (Object.hasOwn(LISTED, method) && 'id' in message)
      listRequests.set(JSON.stringify(message.id), LISTED[method as keyof typeof LISTED])
    if (!Object.hasOwn(NAMED, method)) continue
    const kind = NAMED[method as keyof typeof NAMED]
    const name = isObject(message.params) ? message.params.name : undefined
    if (typeof name !== 'string') refused.set(message, `${method} needs params.name, the ${kind}'s name as a string`)
    else if (!passesLists(name, lists.allow, lists.deny))
      refused.set(message, `${serverName}'s policy does not allow the ${kind} "${name}"`)
  }
  if (refused.size === 0) return { lists: listRequests }
  return { refusal: refusalOf(messages as JsonObject[], refused, batch, serverName) }
}

/**
 * The answer to a body with refused requests: each refused one gets its error; in a batch, the
 * others are not sent either (the batch is answered whole, here) and say why.
 */
function refusalOf(messages: JsonObject[], refused: Map<JsonObject, string>, batch: boolean, serverName: string) {
  const answers: unknown[] = []
  for (const message of messages) {
    const reason = refused.get(message)
    if (reason) answers.push(rpcError(message.id ?? null, -32602, reason))
    else if ('id' in message && typeof message.method === 'string')
      answers.push(
        rpcError(message.id, -32600, `Not sent: this batch also asks for what ${serverName}'s policy does not allow`),
      )
  }
  if (batch) return { status: 200 as const, body: answers }
  // A refused notification has no id to answer: a bad request.
  return { status: 'id' in messages[0] ? (200 as const) : (400 as const), body: answers[0] }
}

function invalid(code: number, message: string): { refusal: Refusal } {
  return { refusal: { status: 400, body: rpcError(null, code, message) } }
}

function rpcError(id: unknown, code: number, message: string) {
  return { jsonrpc: '2.0', id, error: { code, message } }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Case-folded as Go's encoding/json matches names: ASCII case, `K` (Kelvin) as k, `ſ` as s. */
function foldCase(name: string): string {
  return name.toLowerCase().replaceAll('ſ', 's')
}

const STRUCTURE = /[{}[\],"]/g

/**
 * A member of a message or of its `params` (objects at most two deep; arrays do not count) that
 * another parser may read differently from JSON.parse, which keeps the last of two same names:
 * a name given twice (some keep the first), two names equal but for case, or a case variant of a
 * member read here. `text` is valid JSON. Deeper objects (tool arguments) are the upstream's.
 */
function findAmbiguousMember(text: string): string | undefined {
  // One entry per open container: the member names (folded) of an object at most two deep,
  // 'deep' for a deeper object, null for an array.
  const open: (Set<string> | null | 'deep')[] = []
  let objects = 0
  let expectsName = false
  STRUCTURE.lastIndex = 0
  for (let match = STRUCTURE.exec(text); match; match = STRUCTURE.exec(text)) {
    const char = match[0]
    if (char === '"') {
      const end = endOfString(text, match.index)
      STRUCTURE.lastIndex = end + 1
      const names = open.at(-1)
      if (expectsName && names instanceof Set) {
        const raw = text.slice(match.index + 1, end)
        const name = raw.includes('\\') ? (JSON.parse(text.slice(match.index, end + 1)) as string) : raw
        const folded = foldCase(name)
        if (names.has(folded) || (folded !== name && READ_MEMBERS.has(folded))) return name
        names.add(folded)
      }
      expectsName = false
    } else if (char === '{') {
      objects++
      open.push(objects <= 2 ? new Set() : 'deep')
      expectsName = true
    } else if (char === '[') {
      open.push(null)
      expectsName = false
    } else if (char === '}' || char === ']') {
      if (open.pop() !== null) objects--
      expectsName = false
    } else expectsName = open.at(-1) !== null
  }
  return undefined
}

/** The index of the quote that ends the string starting at `start`. */
function endOfString(text: string, start: number): number {
  let end = text.indexOf('"', start + 1)
  while (end !== -1) {
    let backslashes = 0
    while (text[end - 1 - backslashes] === '\\') backslashes++
    if (backslashes % 2 === 0) return end
    end = text.indexOf('"', end + 1)
  }
  return text.length
}

/**
 * How a 2026 request's `Mcp-Method` or `Mcp-Name` header (SEP-2243) disagrees with its body (one
 * message; undefined for a batch), if it does: an upstream may act on the header, so both must
 * name the same thing.
 */
function findHeaderMismatch(message: JsonObject | undefined, headers: Headers): string | undefined {
  const methodHeader = headers.get('mcp-method')
  if (!message)
    return methodHeader !== null || headers.has('mcp-name')
      ? 'a batch cannot carry the Mcp-Method or Mcp-Name header'
      : undefined
  if (methodHeader !== null && methodHeader !== message.method)
    return `the Mcp-Method header names "${methodHeader}" but the body's method is "${String(message.method)}"`
  const nameHeader = headers.get('mcp-name')
  if (nameHeader === null || typeof message.method !== 'string' || !Object.hasOwn(NAMED, message.method)) return
  const name = isObject(message.params) ? message.params.name : undefined
  const decoded = decodeHeaderValue(nameHeader)
  if (decoded !== name) return `the Mcp-Name header names "${nameHeader}" but params.name is "${String(name)}"`
}

/** SEP-2243: a value that is not plain ASCII travels as `=?base64?<UTF-8 in Base64>?=`. */
function decodeHeaderValue(value: string): string | undefined {
  const encoded = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/.exec(value)?.[1]
  if (encoded === undefined) return value
  try {
    return strictDecoder.decode(Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0)))
  } catch {
    return undefined
  }
}

/** Which member of a list answer to filter: the one its request asked for, or any (a GET stream). */
type ListMatch = ListRequests | 'any'

/**
 * The upstream's answer with the refused entries out of its list results. A JSON answer is read
 * whole (up to the cap) and written anew; an SSE one streams, and only the events answering list
 * requests are rewritten. Any other answer (an error status, 202, another type) passes as it is.
 */
export async function filterListResponse(
  upstream: Response,
  match: ListMatch,
  lists: NameLists,
  serverName: string,
): Promise<Response> {
  const type = upstream.headers.get('content-type')?.toLowerCase() ?? ''
  const isJson = /^application\/([\w.-]+\+)?json\b/.test(type)
  if (!upstream.ok || !upstream.body || (!isJson && !type.startsWith('text/event-stream'))) return upstream
  const headers = new Headers(upstream.headers)
  headers.delete('content-encoding')
  headers.delete('content-length')
  const init = { status: upstream.status, statusText: upstream.statusText, headers }
  const body = decodedBody(upstream)
  if (!body) {
    await upstream.body.cancel().catch(() => {})
    const encoding = upstream.headers.get('content-encoding')
    return failed(match, `${serverName} answered in an encoding Gatehouse cannot read (${encoding})`)
  }
  const pending = match === 'any' ? undefined : new Map(match)
  const rewrite = (message: unknown) => filterMessage(message, pending, lists)
  if (!isJson)
    return new Response(
      rewriteSseEvents(body, {
        maxEventBytes: MAX_LIST_RESPONSE_BYTES,
        finished: () => pending?.size === 0,
        dataOf: (data, event) => (event === '' || event === 'message' ? rewriteJson(data, rewrite) : undefined),
        overflowEvent: () =>
          tooLarge(match, serverName)
            .map((error) => `event: message\ndata: ${JSON.stringify(error)}\n\n`)
            .join(''),
      }),
      init,
    )
  let bytes: Uint8Array<ArrayBuffer> | undefined
  try {
    bytes = await readStreamWithin(body, MAX_LIST_RESPONSE_BYTES)
  } catch (error) {
    const cause = error instanceof Error ? error.message : 'the connection failed'
    return failed(match, `${serverName} is unavailable: its answer could not be read (${cause})`)
  }
  if (!bytes) return Response.json(single(tooLarge(match, serverName)), { status: 502 })
  const text = new TextDecoder().decode(bytes)
  return new Response(rewriteJson(text, rewrite) ?? bytes, init)
}

/** `text` with its list answers filtered, or undefined when it holds none (or is not JSON). */
function rewriteJson(text: string, rewrite: (message: unknown) => unknown): string | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!Array.isArray(parsed)) {
    const filtered = rewrite(parsed)
    return filtered === undefined ? undefined : JSON.stringify(filtered)
  }
  let changed = false
  const messages = parsed.map((message) => {
    const filtered = rewrite(message)
    if (filtered === undefined) return message
    changed = true
    return filtered
  })
  return changed ? JSON.stringify(messages) : undefined
}

/**
 * A list answer with the refused entries out, or undefined for any other message. `pending` holds
 * the list requests not answered yet (each answer, result or error, is taken off); without it any
 * result holding a list is filtered.
 */
function filterMessage(message: unknown, pending: ListRequests | undefined, lists: NameLists): unknown {
  if (!isObject(message) || !('id' in message) || 'method' in message) return undefined
  let member: ListedMember | undefined
  if (pending) {
    const key = JSON.stringify(message.id)
    member = pending.get(key)
    if (!member) return undefined
    pending.delete(key)
  }
  const result = message.result
  if (!isObject(result)) return undefined
  member ??= LISTED_MEMBERS.find((candidate) => Array.isArray(result[candidate]))
  const entries = member && result[member]
  if (!member || !Array.isArray(entries)) return undefined
  const passing = entries.filter(
    (entry) => isObject(entry) && typeof entry.name === 'string' && passesLists(entry.name, lists.allow, lists.deny),
  )
  return { ...message, result: { ...result, [member]: passing } }
}

const DECODERS: Record<string, CompressionFormat | 'brotli' | 'zstd'> = {
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  br: 'brotli',
  zstd: 'zstd',
}

/**
 * The body with its `Content-Encoding` undone (the passthrough's fetch leaves a body as it came,
 * for the client to decode), or undefined for an encoding this runtime cannot decode.
 */
function decodedBody(upstream: Response): ReadableStream<Uint8Array> | undefined {
  const codings = (upstream.headers.get('content-encoding') ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity')
  let decompressors: ReadableWritablePair<Uint8Array, Uint8Array>[]
  try {
    decompressors = codings.reverse().map((coding) => {
      if (!Object.hasOwn(DECODERS, coding)) throw new Error(`unknown coding ${coding}`)
      const stream = new DecompressionStream(DECODERS[coding] as CompressionFormat)
      return stream as unknown as ReadableWritablePair<Uint8Array, Uint8Array>
    })
  } catch {
    return undefined
  }
  let body = upstream.body as ReadableStream<Uint8Array>
  for (const decompress of decompressors) body = body.pipeThrough(decompress)
  return body
}

/** The error for each list request waiting for its answer (one, or a batch's). */
function errorsFor(match: ListMatch, message: string): unknown[] {
  const ids = match === 'any' ? [null] : [...match.keys()].map((key) => JSON.parse(key))
  return ids.map((id) => rpcError(id, -32000, message))
}

/** One answer as a single message, several as a batch's. */
function single(answers: unknown[]): unknown {
  return answers.length === 1 ? answers[0] : answers
}

function tooLarge(match: ListMatch, serverName: string): unknown[] {
  const cap = `${MAX_LIST_RESPONSE_BYTES / (1024 * 1024)} MiB`
  return errorsFor(
    match,
    `${serverName}'s list answer is larger than ${cap}, the most Gatehouse reads to apply the server's policy`,
  )
}

function failed(match: ListMatch, message: string): Response {
  return Response.json(single(errorsFor(match, message)), { status: 502 })
}
