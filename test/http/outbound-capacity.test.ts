import { describe, expect, it } from 'bun:test'
import { OutboundCapacity, StreamRefused } from '../../src/http/outbound-capacity.ts'
import { EventSizer, SseEventSplitter } from '../../src/runtime/sse-events.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function budget(limits: Partial<ConstructorParameters<typeof OutboundCapacity>[0]> = {}) {
  return new OutboundCapacity({
    runtimeLimit: 256,
    total: 8,
    perUser: 3,
    perServer: 5,
    idleMs: Number.POSITIVE_INFINITY,
    ...limits,
  })
}

function refusalOf(take: () => unknown): StreamRefused {
  try {
    take()
  } catch (error) {
    if (error instanceof StreamRefused) return error
    throw error
  }
  throw new Error('the stream was not refused')
}

/** A body that yields `chunks`, then stays open until cancelled. */
function bodyOf(chunks: string[], onCancel = () => {}) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk))
    },
    cancel: onCancel,
  })
}

describe('the stream budget', () => {
  it('refuses a user past their bound, naming it, while other users still get streams', () => {
    const capacity = budget()
    for (let i = 0; i < 3; i++) capacity.acquire({ userId: 'alice', serverId: `s${i}` })
    const refused = refusalOf(() => capacity.acquire({ userId: 'alice', serverId: 's9' }))
    expect(refused.scope).toBe('user')
    expect(refused.message).toContain('3 open upstream streams')
    expect(() => capacity.acquire({ userId: 'bob', serverId: 's9' })).not.toThrow()
  })

  it('refuses a server past its bound, and the process past its total', () => {
    const capacity = budget()
    for (const user of ['a', 'b', 'c', 'd', 'e']) capacity.acquire({ userId: user, serverId: 'busy' })
    expect(refusalOf(() => capacity.acquire({ userId: 'f', serverId: 'busy' })).scope).toBe('server')
    for (const user of ['f', 'g', 'h']) capacity.acquire({ userId: user, serverId: 'other' })
    expect(refusalOf(() => capacity.acquire({ userId: 'i', serverId: 'third' })).scope).toBe('total')
  })

  it('never gives streams more than half of the runtime’s connections', () => {
    const capacity = budget({ runtimeLimit: 6, total: 100, perUser: 100, perServer: 100 })
    for (let i = 0; i < 3; i++) capacity.acquire({ userId: `u${i}`, serverId: 's' })
    expect(refusalOf(() => capacity.acquire({ userId: 'u9', serverId: 's' })).limit).toBe(3)
  })

  it('gives optional streams only the first half of the budget', () => {
    const capacity = budget({ total: 4, perUser: 10, perServer: 10 })
    capacity.acquire({ userId: 'a', serverId: 's' }, { optional: true })
    capacity.acquire({ userId: 'a', serverId: 's' }, { optional: true })
    expect(() => capacity.acquire({ userId: 'a', serverId: 's' }, { optional: true })).toThrow(StreamRefused)
    expect(() => capacity.acquire({ userId: 'a', serverId: 's' })).not.toThrow()
  })

  it('counts optional streams apart, so they never use up what a user may open themselves', () => {
    const capacity = budget({ total: 100, perUser: 3, perServer: 100 })
    for (let i = 0; i < 3; i++) capacity.acquire({ userId: 'alice', serverId: `pooled${i}` }, { optional: true })
    for (let i = 0; i < 3; i++) expect(() => capacity.acquire({ userId: 'alice', serverId: 'held' })).not.toThrow()
    expect(() => capacity.acquire({ userId: 'alice', serverId: 'held' })).toThrow(StreamRefused)
  })

  it('takes a slot back once, however often it is released', () => {
    const capacity = budget()
    const lease = capacity.acquire({ userId: 'alice', serverId: 's' })
    lease.release()
    lease.release()
    expect(capacity.snapshot().streams).toBe(0)
    for (let i = 0; i < 3; i++) capacity.acquire({ userId: 'alice', serverId: 's' })
    expect(() => capacity.acquire({ userId: 'alice', serverId: 's' })).toThrow(StreamRefused)
  })

  it('counts requests and streams against the runtime’s connections', () => {
    const capacity = budget({ runtimeLimit: 4 })
    const done = [capacity.startRequest(), capacity.startRequest()]
    capacity.acquire({ userId: 'a', serverId: 's' })
    expect(capacity.exhausted()).toBe(false)
    capacity.acquire({ userId: 'b', serverId: 's' })
    expect(capacity.exhausted()).toBe(true)
    done[0]()
    done[0]()
    expect(capacity.exhausted()).toBe(false)
    expect(capacity.snapshot()).toMatchObject({ streams: 2, requests: 1 })
  })
})

describe('a watched stream', () => {
  it('passes its chunks on and releases its slot when it ends', async () => {
    const capacity = budget()
    const lease = capacity.acquire({ userId: 'alice', serverId: 's' })
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode('data: 1\n\n'))
        controller.close()
      },
    })
    expect(await new Response(capacity.watch(source, lease)).text()).toBe('data: 1\n\n')
    expect(capacity.snapshot().streams).toBe(0)
  })

  it('releases its slot and cancels the source when the reader cancels', async () => {
    const capacity = budget()
    let cancelled = false
    const watched = capacity.watch(
      bodyOf(['data: 1\n\n'], () => {
        cancelled = true
      }),
      capacity.acquire({ userId: 'alice', serverId: 's' }),
    )
    const reader = watched.getReader()
    await reader.read()
    await reader.cancel()
    expect(cancelled).toBe(true)
    expect(capacity.snapshot().streams).toBe(0)
  })

  it('ends a stream that delivers nothing for the idle time, and cancels the source', async () => {
    const capacity = budget({ idleMs: 50 })
    let cancelled = false
    const watched = capacity.watch(
      bodyOf([': open\n\n'], () => {
        cancelled = true
      }),
      capacity.acquire({ userId: 'alice', serverId: 's' }),
    )
    expect(await new Response(watched).text()).toBe(': open\n\n')
    expect(cancelled).toBe(true)
    expect(capacity.snapshot().streams).toBe(0)
  })

  it('errors on an event larger than the cap, and releases its slot', async () => {
    const capacity = budget()
    const watched = capacity.watch(
      bodyOf(['data: small\n\n', `data: ${'x'.repeat(600)}`]),
      capacity.acquire({ userId: 'alice', serverId: 's' }),
      { maxEventBytes: 512 },
    )
    expect(new Response(watched).text()).rejects.toThrow('larger than 512 bytes')
    await Bun.sleep(10)
    expect(capacity.snapshot().streams).toBe(0)
  })
})

describe('SSE event boundaries', () => {
  it('measures the open event across chunks and every line-ending style', () => {
    const sizer = new EventSizer()
    expect(sizer.add(encoder.encode('data: abc\r'))).toBe(10)
    expect(sizer.add(encoder.encode('\n\r\n'))).toBe(0)
    expect(sizer.add(encoder.encode('data: x\rdata: y\r\r'))).toBe(0)
    expect(sizer.add(encoder.encode('data: 12345'))).toBe(11)
  })

  it('cuts events out of chunks split anywhere', () => {
    const stream = 'event: message\ndata: {"a":1}\n\n: comment\n\ndata: two\r\ndata: lines\r\n\r\ndata: open'
    for (let size = 1; size <= stream.length; size++) {
      const splitter = new SseEventSplitter()
      const events: string[] = []
      for (let at = 0; at < stream.length; at += size)
        for (const event of splitter.push(encoder.encode(stream.slice(at, at + size))))
          events.push(decoder.decode(event))
      expect(events.map((event) => event.trimEnd())).toEqual([
        'event: message\ndata: {"a":1}',
        ': comment',
        'data: two\r\ndata: lines',
      ])
      expect(splitter.pending).toBe('data: open'.length)
    }
  })
})
