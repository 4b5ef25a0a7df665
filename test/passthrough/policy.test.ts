import { describe, expect, it } from 'bun:test'
import {
  filterListResponse,
  inspectRequest,
  MAX_LIST_RESPONSE_BYTES,
  type NameLists,
  readNameLists,
  screenRequest,
} from '../../src/passthrough/policy.ts'

/** The allow and deny lists on the passthrough, without HTTP: what is refused, and what is filtered. */

const DENY: NameLists = { allow: [], deny: ['delete_*', 'secret-prompt', 'private-*'] }
const encoder = new TextEncoder()
const bytesOf = (value: unknown) => encoder.encode(typeof value === 'string' ? value : JSON.stringify(value))
const call = (name: unknown, id: unknown = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name } })

function inspect(body: unknown, lists = DENY, headers: Record<string, string> = {}) {
  return inspectRequest(bytesOf(body), lists, 'Keyed', new Headers(headers))
}

function refusalOf(body: unknown, lists = DENY, headers: Record<string, string> = {}) {
  const inspected = inspect(body, lists, headers)
  if (!('refusal' in inspected)) throw new Error(`not refused: ${JSON.stringify(body)}`)
  return inspected.refusal as { status: number; body: any }
}

function listsOf(body: unknown, lists = DENY, headers: Record<string, string> = {}) {
  const inspected = inspect(body, lists, headers)
  if ('refusal' in inspected) throw new Error(`refused: ${JSON.stringify(inspected.refusal.body)}`)
  return inspected.lists
}

const server = (allow: string[], deny: string[]) => ({
  tool_allow_list: JSON.stringify(allow),
  tool_deny_list: JSON.stringify(deny),
  display_name: 'Keyed',
})

const postOf = (body: string) =>
  new Request('http://gatehouse.test/mcp/servers/keyed', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  })

describe('which servers and requests the lists concern', () => {
  it('reads no lists from a server whose two lists are empty', () => {
    expect(readNameLists(server([], []))).toBeUndefined()
    expect(readNameLists(server(['echo'], []))).toEqual({ allow: ['echo'], deny: [] })
  })

  it('leaves every request of a server without lists alone, even one it would refuse', () => {
    const body = JSON.stringify(call('delete_everything'))
    expect(screenRequest(server([], []), postOf(body), bytesOf(body))).toEqual({})
    expect(screenRequest(server([], []), postOf('not json'), bytesOf('not json'))).toEqual({})
  })

  it('filters the answer only of a request that lists something, and every GET stream', () => {
    const listed = server([], ['delete_*'])
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
    expect(screenRequest(listed, postOf(ping), bytesOf(ping))).toEqual({})
    const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(screenRequest(listed, postOf(list), bytesOf(list)).filter).toBeFunction()
    const get = new Request('http://gatehouse.test/mcp/servers/keyed', { headers: { 'last-event-id': 'e-1' } })
    expect(screenRequest(listed, get, null).filter).toBeFunction()
    const refused = screenRequest(listed, postOf(JSON.stringify(call('delete_all'))), bytesOf(call('delete_all')))
    expect(refused.refusal?.status).toBe(200)
  })
})

describe('refusing requests', () => {
  it('refuses a call of a tool the deny list names, answering its id', () => {
    const refusal = refusalOf(call('delete_everything', 'call-7'))
    expect(refusal.status).toBe(200)
    expect(refusal.body).toEqual({
      jsonrpc: '2.0',
      id: 'call-7',
      error: { code: -32602, message: `Keyed's policy does not allow the tool "delete_everything"` },
    })
  })

  it('lets through only what a non-empty allow list names, then applies the deny list', () => {
    const lists = { allow: ['ech*', 'add'], deny: ['add'] }
    expect(listsOf(call('echo'), lists).size).toBe(0)
    expect(listsOf(call('echo_twice'), lists).size).toBe(0)
    expect(refusalOf(call('add'), lists).body.error.message).toContain('"add"')
    expect(refusalOf(call('list_users'), lists).body.error.message).toContain('"list_users"')
  })

  it('refuses a prompt the lists name, as it does a tool', () => {
    const refusal = refusalOf({ jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'secret-prompt' } })
    expect(refusal.body.error.message).toBe(`Keyed's policy does not allow the prompt "secret-prompt"`)
    expect(listsOf({ jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'greet' } }).size).toBe(0)
  })

  it('refuses a call whose tool name is not a string, which the lists cannot judge', () => {
    expect(refusalOf(call(['delete_everything'])).body.error.message).toBe(
      `tools/call needs params.name, the tool's name as a string`,
    )
    expect(refusalOf({ jsonrpc: '2.0', id: 1, method: 'tools/call' }).body.error.code).toBe(-32602)
  })

  it('answers a batch with a refused call whole: the refusal, and each other request not sent', () => {
    const refusal = refusalOf([
      call('echo', 1),
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 0 } },
      call('delete_everything', 2),
    ])
    expect(refusal.status).toBe(200)
    expect(refusal.body).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32600, message: `Not sent: this batch also asks for what Keyed's policy does not allow` },
      },
      {
        jsonrpc: '2.0',
        id: 2,
        error: { code: -32602, message: `Keyed's policy does not allow the tool "delete_everything"` },
      },
    ])
  })

  it('answers a refused call sent as a notification with a bad request', () => {
    const refusal = refusalOf({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'delete_everything' } })
    expect(refusal.status).toBe(400)
    expect(refusal.body.id).toBeNull()
  })

  it('refuses what is not JSON in UTF-8, and a batch holding something other than messages', () => {
    expect(refusalOf('{"jsonrpc":').body.error.code).toBe(-32700)
    const latin1 = new Uint8Array([
      ...bytesOf('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x'),
      0xe9,
      ...bytesOf('"}}'),
    ])
    const inspected = inspectRequest(latin1, DENY, 'Keyed', new Headers())
    expect('refusal' in inspected && (inspected.refusal.body as any).error.code).toBe(-32700)
    expect(refusalOf([[call('delete_everything')]]).body.error).toEqual({
      code: -32600,
      message: 'Invalid Request: every JSON-RPC message must be an object',
    })
  })

  it('refuses a member given twice, which parsers keeping the first would read otherwise', () => {
    const twice = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything","name":"echo"}}'
    expect(refusalOf(twice).status).toBe(400)
    expect(refusalOf(twice).body.error.message).toContain('"name" is given twice')
    expect(refusalOf('{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}').body.error.code).toBe(-32600)
    // Escapes spell the same name.
    expect(refusalOf('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"n\\u0061me":"a","name":"b"}}').status).toBe(
      400,
    )
  })

  it('refuses a member in another case, which case-insensitive parsers would read', () => {
    expect(
      refusalOf('{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"delete_everything"}}').status,
    ).toBe(400)
    expect(
      refusalOf('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","NAME":"delete_x"}}').status,
    ).toBe(400)
    // Go folds the long s to s.
    expect(refusalOf('{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"delete_x"}}').status).toBe(400)
  })

  it('leaves what the upstream alone reads, such as tool arguments, to the upstream', () => {
    const body = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { name: 'a', Name: 'b', nested: { x: 1 } }, _meta: { progressToken: 't' } },
    }
    expect(listsOf(body).size).toBe(0)
    expect(
      listsOf('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"k":1,"k":2}}}').size,
    ).toBe(0)
    expect(listsOf('{"jsonrpc":"2.0","id":"{\\"[,","method":"ping","params":{"s":"}\\"]{\\\\"}}').size).toBe(0)
  })

  it('refuses a 2026 request whose Mcp-Method or Mcp-Name header names something other than its body', () => {
    const body = call('echo')
    expect(listsOf(body, DENY, { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }).size).toBe(0)
    expect(
      refusalOf(body, DENY, { 'mcp-method': 'tools/call', 'mcp-name': 'delete_everything' }).body.error.message,
    ).toBe('Invalid Request: the Mcp-Name header names "delete_everything" but params.name is "echo"')
    expect(refusalOf(body, DENY, { 'mcp-method': 'prompts/get' }).status).toBe(400)
    expect(refusalOf([body], DENY, { 'mcp-method': 'tools/call' }).body.error.message).toBe(
      'Invalid Request: a batch cannot carry the Mcp-Method or Mcp-Name header',
    )
    // SEP-2243's Base64 form, for names that are not plain ASCII.
    const named = call('écho')
    expect(listsOf(named, DENY, { 'mcp-name': `=?base64?${Buffer.from('écho').toString('base64')}?=` }).size).toBe(0)
    expect(
      refusalOf(named, DENY, { 'mcp-name': `=?base64?${Buffer.from('delete_x').toString('base64')}?=` }).status,
    ).toBe(400)
  })

  it('notes the list requests of a body, by id, with what each lists', () => {
    const lists = listsOf([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: '1', method: 'prompts/list' },
      { jsonrpc: '2.0', id: 2, method: 'resources/list' },
      { jsonrpc: '2.0', id: 3, method: 'resources/templates/list' },
      { jsonrpc: '2.0', method: 'tools/list' },
    ])
    expect([...lists]).toEqual([
      ['1', 'tools'],
      ['"1"', 'prompts'],
      ['2', 'resources'],
      ['3', 'resourceTemplates'],
    ])
  })
})

const entries = (...names: string[]) => names.map((name) => ({ name, description: `${name}!` }))

/** A stream that sends `chunks` one by one, and says when it was cancelled. */
function streamOf(chunks: (string | Uint8Array)[]) {
  let cancelled = false
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift()
      if (next === undefined) controller.close()
      else controller.enqueue(typeof next === 'string' ? encoder.encode(next) : next)
    },
    cancel() {
      cancelled = true
    },
  })
  return { stream, cancelled: () => cancelled }
}

const sse = (body: ReadableStream<Uint8Array>) =>
  new Response(body, { headers: { 'content-type': 'text/event-stream' } })

describe('filtering JSON answers', () => {
  const answer = (body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json', ...headers } })

  it('takes the refused tools, prompts, resources and templates out of the answers to list requests', async () => {
    const requests = listsOf([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'prompts/list' },
      { jsonrpc: '2.0', id: 3, method: 'resources/list' },
      { jsonrpc: '2.0', id: 4, method: 'resources/templates/list' },
      { jsonrpc: '2.0', id: 5, method: 'ping' },
    ])
    const upstream = answer([
      { jsonrpc: '2.0', id: 1, result: { tools: entries('echo', 'delete_everything'), nextCursor: 'c2' } },
      { jsonrpc: '2.0', id: 2, result: { prompts: entries('greet', 'secret-prompt') } },
      {
        jsonrpc: '2.0',
        id: 3,
        result: {
          resources: [
            { uri: 'file:///a', name: 'private-notes' },
            { uri: 'file:///b', name: 'readme' },
          ],
        },
      },
      { jsonrpc: '2.0', id: 4, result: { resourceTemplates: [{ uriTemplate: 'db://{table}', name: 'private-db' }] } },
      { jsonrpc: '2.0', id: 5, result: { tools: entries('delete_everything') } },
    ])
    const filtered = await filterListResponse(upstream, requests, DENY, 'Keyed')
    expect(await filtered.json()).toEqual([
      { jsonrpc: '2.0', id: 1, result: { tools: entries('echo'), nextCursor: 'c2' } },
      { jsonrpc: '2.0', id: 2, result: { prompts: entries('greet') } },
      { jsonrpc: '2.0', id: 3, result: { resources: [{ uri: 'file:///b', name: 'readme' }] } },
      { jsonrpc: '2.0', id: 4, result: { resourceTemplates: [] } },
      { jsonrpc: '2.0', id: 5, result: { tools: entries('delete_everything') } },
    ])
  })

  it('passes an error answer, or one of another type, as it came', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    const failed = answer({ jsonrpc: '2.0', id: 1, error: { code: -32000, message: 'down' } })
    const refused = new Response('nope', { status: 400, headers: { 'content-type': 'application/json' } })
    expect(await filterListResponse(refused, requests, DENY, 'Keyed')).toBe(refused)
    const plain = new Response('text', { headers: { 'content-type': 'text/plain' } })
    expect(await filterListResponse(plain, requests, DENY, 'Keyed')).toBe(plain)
    expect(await (await filterListResponse(failed, requests, DENY, 'Keyed')).json()).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32000, message: 'down' },
    })
  })

  it('reads a compressed answer, and sends it filtered and uncompressed', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    const body = Bun.gzipSync(bytesOf({ jsonrpc: '2.0', id: 1, result: { tools: entries('echo', 'delete_all') } }))
    const upstream = new Response(body, {
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': String(body.length),
      },
    })
    const filtered = await filterListResponse(upstream, requests, DENY, 'Keyed')
    expect(filtered.headers.get('content-encoding')).toBeNull()
    expect(await filtered.json()).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: entries('echo') } })
  })

  it('answers with a JSON-RPC error naming the server when the encoding is unknown', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 9, method: 'tools/list' })
    const upstream = answer({}, { 'content-encoding': 'compress' })
    const filtered = await filterListResponse(upstream, requests, DENY, 'Keyed')
    expect(filtered.status).toBe(502)
    expect(await filtered.json()).toEqual({
      jsonrpc: '2.0',
      id: 9,
      error: { code: -32000, message: 'Keyed answered in an encoding Gatehouse cannot read (compress)' },
    })
  })

  it('stops reading past the cap, and answers with an error naming the server and the cap', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
    const chunk = encoder.encode(' '.repeat(1024 * 1024))
    const source = streamOf(['{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}', ...Array(12).fill(chunk)])
    const upstream = new Response(source.stream, { headers: { 'content-type': 'application/json' } })
    const filtered = await filterListResponse(upstream, requests, DENY, 'Keyed')
    expect(filtered.status).toBe(502)
    expect(await filtered.json()).toEqual({
      jsonrpc: '2.0',
      id: 2,
      error: {
        code: -32000,
        message: `Keyed's list answer is larger than 8 MiB, the most Gatehouse reads to apply the server's policy`,
      },
    })
    expect(source.cancelled()).toBe(true)
    expect(MAX_LIST_RESPONSE_BYTES).toBe(8 * 1024 * 1024)
  })
})

describe('filtering SSE answers', () => {
  const listEvent = (id: number, names: string[], eventId = 'e-2') =>
    `event: message\nid: ${eventId}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { tools: entries(...names) } })}\n\n`
  const notice =
    'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}\n\n'

  async function textOf(response: Response) {
    return new TextDecoder().decode(await response.arrayBuffer())
  }

  it('rewrites only the event answering the list request, whatever the chunks, and keeps its id', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    const whole = `: primed\n\n${notice}${listEvent(1, ['echo', 'delete_everything'])}${notice}`
    const bytes = encoder.encode(whole)
    const oneByOne = streamOf(Array.from(bytes, (byte) => new Uint8Array([byte])))
    const filtered = await filterListResponse(sse(oneByOne.stream), requests, DENY, 'Keyed')
    expect(await textOf(filtered)).toBe(`: primed\n\n${notice}${listEvent(1, ['echo'])}${notice}`)
  })

  it('reads CRLF and CR line ends, and data split over several lines', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    const crlf = `id: e-1\r\ndata: {"jsonrpc":"2.0","id":1,\r\ndata: "result":{"tools":[{"name":"delete_x"},{"name":"echo"}]}}\r\n\r\n`
    const filtered = await filterListResponse(
      sse(streamOf([`${notice.replaceAll('\n', '\r')}`, crlf]).stream),
      requests,
      DENY,
      'Keyed',
    )
    expect(await textOf(filtered)).toBe(
      `${notice.replaceAll('\n', '\r')}id: e-1\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]}}\n\n`,
    )
  })

  it('passes each event on as soon as it is complete, and the rest unread once the list is answered', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    let send!: ReadableStreamDefaultController<Uint8Array>
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        send = controller
      },
    })
    const reader = (await filterListResponse(sse(source), requests, DENY, 'Keyed')).body!.getReader()
    const decoder = new TextDecoder()
    send.enqueue(encoder.encode(notice))
    expect(decoder.decode((await reader.read()).value)).toBe(notice)
    send.enqueue(encoder.encode(listEvent(1, ['delete_x', 'echo'])))
    expect(decoder.decode((await reader.read()).value)).toBe(listEvent(1, ['echo']))
    // The list is answered: what follows passes as it comes, even half an event.
    send.enqueue(encoder.encode(listEvent(1, ['delete_x']).slice(0, 20)))
    expect(decoder.decode((await reader.read()).value)).toBe(listEvent(1, ['delete_x']).slice(0, 20))
    send.close()
    expect((await reader.read()).done).toBe(true)
  })

  it('filters any list answer on a GET stream, where the requests are not known', async () => {
    const request = new Request('http://gatehouse.test/mcp/servers/keyed', { headers: { 'last-event-id': 'e-1' } })
    const screening = screenRequest(server([], ['delete_*']), request, null)
    const replay = `${listEvent(7, ['delete_x', 'echo'], 'e-3')}${notice}${listEvent(8, ['delete_y'], 'e-4')}`
    const filtered = await screening.filter!(sse(streamOf([replay]).stream))
    expect(await textOf(filtered)).toBe(`${listEvent(7, ['echo'], 'e-3')}${notice}${listEvent(8, [], 'e-4')}`)
  })

  it('ends the stream with an error event naming the server and the cap when one event is too large', async () => {
    const requests = listsOf({ jsonrpc: '2.0', id: 5, method: 'tools/list' })
    const chunk = encoder.encode('x'.repeat(1024 * 1024))
    const source = streamOf([
      notice,
      'event: message\ndata: {"jsonrpc":"2.0","id":5,"result":{"tools":["',
      ...Array(9).fill(chunk),
    ])
    const filtered = await filterListResponse(sse(source.stream), requests, DENY, 'Keyed')
    const text = await textOf(filtered)
    expect(text).toStartWith(notice)
    const last = text.slice(notice.length)
    expect(last).toStartWith('event: message\ndata: ')
    expect(JSON.parse(last.slice('event: message\ndata: '.length))).toEqual({
      jsonrpc: '2.0',
      id: 5,
      error: {
        code: -32000,
        message: `Keyed's list answer is larger than 8 MiB, the most Gatehouse reads to apply the server's policy`,
      },
    })
    expect(source.cancelled()).toBe(true)
  })
})
