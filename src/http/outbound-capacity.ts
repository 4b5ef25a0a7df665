import type { Config } from '../config.ts'
import { EventSizer } from '../runtime/sse-events.ts'

/**
 * The runtime's `fetch` serves a fixed number of requests at once per process (Bun:
 * `BUN_CONFIG_MAX_HTTP_REQUESTS`, 256 unless set when the process starts), and a streamed
 * response holds its slot for as long as it is open. Past the limit every outbound request of
 * the process waits, for every user. Long-lived upstream streams (a passthrough client's GET
 * stream, an SSE-transport session, a pooled client's event stream) are therefore budgeted here:
 * in total at most half the runtime's slots, so short requests always find one, and per user and
 * per server, so one member or one upstream cannot take the whole budget. A stream that delivers
 * nothing for a while is closed (clients open a new one), and what is in flight is reported to
 * `/readyz` and `/metrics`.
 */

export interface StreamLimits {
  /** Concurrent requests the runtime's fetch serves (`BUN_CONFIG_MAX_HTTP_REQUESTS`). */
  runtimeLimit: number
  /** Long-lived streams in all; capped at half of `runtimeLimit`. */
  total: number
  perUser: number
  perServer: number
  /** A stream that delivers nothing for this long is closed; `Infinity` never. */
  idleMs: number
}

/** Who a stream is opened for: its user and its server. */
export interface StreamOwner {
  userId: string
  serverId: string
}

/** No slot for another stream: which bound was reached. */
export class StreamRefused extends Error {
  constructor(
    readonly scope: 'user' | 'server' | 'total',
    readonly limit: number,
  ) {
    super(
      scope === 'user'
        ? `you already hold ${limit} open upstream streams, the most one user may hold; close one and try again`
        : scope === 'server'
          ? `this server already has ${limit} open streams, the most one server may have; try again later`
          : `Gatehouse holds ${limit} open upstream streams, the most it allows; try again later`,
    )
    this.name = 'StreamRefused'
  }
}

export interface StreamLease {
  /** Gives the slot back; idempotent. */
  release(): void
}

export interface WatchOptions {
  /** Largest single SSE event (bytes up to a blank line); the stream errors past it. */
  maxEventBytes?: number
}

/** The budget the configuration describes, for the runtime this process was started with. */
export function outboundCapacityOf(
  config: Pick<
    Config,
    | 'outboundRuntimeLimit'
    | 'upstreamMaxStreams'
    | 'upstreamMaxStreamsPerUser'
    | 'upstreamMaxStreamsPerServer'
    | 'upstreamStreamIdleSeconds'
  >,
): OutboundCapacity {
  return new OutboundCapacity({
    runtimeLimit: config.outboundRuntimeLimit,
    total: config.upstreamMaxStreams,
    perUser: config.upstreamMaxStreamsPerUser,
    perServer: config.upstreamMaxStreamsPerServer,
    idleMs: config.upstreamStreamIdleSeconds * 1000,
  })
}

export class OutboundCapacity {
  private streams = 0
  private readonly byUser = new Map<string, number>()
  private readonly byServer = new Map<string, number>()
  /** Requests sent and not finished, streams aside (headers awaited, or a capped body being read). */
  private requests = 0
  readonly total: number

  constructor(readonly limits: StreamLimits) {
    this.total = Math.max(1, Math.min(limits.total, Math.floor(limits.runtimeLimit / 2)))
  }

  /**
   * A slot for one long-lived stream, or `StreamRefused`. An `optional` stream (a pooled client's
   * event stream, which list polling stands in for) only takes from the first half of the budget,
   * so streams users open themselves always have the rest.
   */
  acquire(owner: StreamOwner, options: { optional?: boolean } = {}): StreamLease {
    const total = options.optional ? Math.floor(this.total / 2) : this.total
    if (this.streams >= total) throw new StreamRefused('total', this.total)
    // Optional streams are counted apart per user and server, so they never use up what a user
    // may open themselves.
    const tag = options.optional ? '\0optional:' : ''
    const user = `${tag}${owner.userId}`
    const server = `${tag}${owner.serverId}`
    if ((this.byUser.get(user) ?? 0) >= this.limits.perUser) throw new StreamRefused('user', this.limits.perUser)
    if ((this.byServer.get(server) ?? 0) >= this.limits.perServer)
      throw new StreamRefused('server', this.limits.perServer)
    this.streams++
    bump(this.byUser, user, 1)
    bump(this.byServer, server, 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.streams--
        bump(this.byUser, user, -1)
        bump(this.byServer, server, -1)
      },
    }
  }

  /** Counts one outbound request until `done` is called (the outbound guard does, once). */
  startRequest(): () => void {
    this.requests++
    let done = false
    return () => {
      if (done) return
      done = true
      this.requests--
    }
  }

  /**
   * A stream's body that gives the lease back when it ends, errors or is cancelled, ends after
   * `idleMs` without data, and errors on an SSE event larger than `maxEventBytes`, so a hostile
   * upstream can neither hold a slot silently nor grow a parser's buffer without bound.
   */
  watch(body: ReadableStream<Uint8Array>, lease: StreamLease, options: WatchOptions = {}): ReadableStream<Uint8Array> {
    const { idleMs } = this.limits
    const maxEventBytes = options.maxEventBytes ?? Number.POSITIVE_INFINITY
    const reader = body.getReader()
    const events = new EventSizer()
    let idle: ReturnType<typeof setTimeout> | undefined
    let finished = false
    const finish = () => {
      finished = true
      clearTimeout(idle)
      lease.release()
    }
    const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
      if (!Number.isFinite(idleMs)) return
      clearTimeout(idle)
      idle = setTimeout(() => {
        if (finished) return
        finish()
        void reader.cancel().catch(() => {})
        try {
          controller.close()
        } catch {}
      }, idleMs)
      ;(idle as { unref?: () => void }).unref?.()
    }
    return new ReadableStream<Uint8Array>({
      start: arm,
      async pull(controller) {
        let chunk: Awaited<ReturnType<typeof reader.read>>
        try {
          chunk = await reader.read()
        } catch (error) {
          if (!finished) {
            finish()
            controller.error(error)
          }
          return
        }
        if (finished) return
        if (chunk.done) {
          finish()
          controller.close()
          return
        }
        if (events.add(chunk.value) > maxEventBytes) {
          finish()
          await reader.cancel().catch(() => {})
          controller.error(new Error(`an event of the upstream's stream is larger than ${maxEventBytes} bytes`))
          return
        }
        arm(controller)
        controller.enqueue(chunk.value)
      },
      async cancel(reason) {
        finish()
        await reader.cancel(reason).catch(() => {})
      },
    })
  }

  /** `response` with its body watched as `watch` does (a response without a body gives the slot back). */
  watchResponse(response: Response, lease: StreamLease, options: WatchOptions = {}): Response {
    if (!response.body) {
      lease.release()
      return response
    }
    return new Response(this.watch(response.body, lease, options), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    })
  }

  snapshot(): { streams: number; streamLimit: number; requests: number; runtimeLimit: number } {
    return {
      streams: this.streams,
      streamLimit: this.total,
      requests: this.requests,
      runtimeLimit: this.limits.runtimeLimit,
    }
  }

  /** Whether a new outbound request would wait for a slot of the runtime's. */
  exhausted(): boolean {
    return this.streams + this.requests >= this.limits.runtimeLimit
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by
  if (next <= 0) counts.delete(key)
  else counts.set(key, next)
}
