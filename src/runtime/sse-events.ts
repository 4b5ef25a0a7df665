/**
 * Rewriting some events of a Server-Sent Events body while it streams (WHATWG HTML, "Server-sent
 * events", the event stream format). The bytes are cut into events at blank lines (a line ended by
 * CRLF, LF or CR), and each event goes on as soon as it is complete, in order: as it came, or with
 * its `data` replaced when `dataOf` returns new data. Only the event being received is held, never
 * more than `maxEventBytes` of it; once `finished()` says no later event needs a look, the rest of
 * the stream passes chunk by chunk, unread. Cancelling the result cancels `body`.
 */
export interface SseEventRewrite {
  /** The event's new `data`, or undefined to pass the event on as it came. */
  dataOf(data: string, type: string): string | undefined
  /** True once no later event can need rewriting. */
  finished(): boolean
  maxEventBytes: number
  /** Sent instead of an event longer than `maxEventBytes`, before the stream ends there. */
  overflowEvent(): string
}

const LF = 0x0a
const CR = 0x0d
const decoder = new TextDecoder()

export function rewriteSseEvents(
  body: ReadableStream<Uint8Array>,
  rewrite: SseEventRewrite,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder()
  let pieces: Uint8Array[] = []
  let held = 0
  let lineIsEmpty = true
  let afterCR = false
  let passing = rewrite.finished()
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (passing) return controller.enqueue(chunk)
        let start = 0
        for (let index = 0; index < chunk.length; index++) {
          const byte = chunk[index]
          // The LF of a CRLF belongs to the line end the CR began.
          if (afterCR && byte === LF) {
            afterCR = false
            continue
          }
          afterCR = byte === CR
          if (byte !== LF && byte !== CR) {
            lineIsEmpty = false
            continue
          }
          if (!lineIsEmpty) {
            lineIsEmpty = true
            continue
          }
          // A blank line: the event ends, with the LF of its CRLF when that has come too.
          if (afterCR && chunk[index + 1] === LF) {
            afterCR = false
            index++
          }
          pieces.push(chunk.subarray(start, index + 1))
          start = index + 1
          controller.enqueue(rewriteEvent(pieces, rewrite, encoder))
          pieces = []
          held = 0
          if (rewrite.finished()) {
            passing = true
            if (start < chunk.length) controller.enqueue(chunk.subarray(start))
            return
          }
        }
        if (start === chunk.length) return
        pieces.push(chunk.subarray(start))
        held += chunk.length - start
        if (held > rewrite.maxEventBytes) {
          pieces = []
          controller.enqueue(encoder.encode(rewrite.overflowEvent()))
          controller.terminate()
        }
      },
      flush(controller) {
        // An event the stream ended in the middle of: passed on as it is (a parser drops it).
        for (const piece of pieces) controller.enqueue(piece)
      },
    }),
  )
}

/** One complete event's bytes, rewritten or as they came. */
function rewriteEvent(pieces: Uint8Array[], rewrite: SseEventRewrite, encoder: TextEncoder): Uint8Array {
  const bytes = pieces.length === 1 ? pieces[0] : joinBytes(pieces)
  const raw = decoder.decode(bytes)
  const lines = raw.split(/\r\n|\r|\n/)
  let data: string[] | undefined
  let type = ''
  for (const line of lines) {
    const field = fieldOf(line)
    if (!field) continue
    if (field.name === 'data') (data ??= []).push(field.value)
    else if (field.name === 'event') type = field.value
  }
  if (!data) return bytes
  const replaced = rewrite.dataOf(data.join('\n'), type)
  if (replaced === undefined) return bytes
  const kept: string[] = []
  for (const line of lines) {
    if (line === '') continue
    if (fieldOf(line)?.name !== 'data') kept.push(line)
    else if (data) {
      kept.push(...replaced.split(/\r\n|\r|\n/).map((part) => `data: ${part}`))
      data = undefined
    }
  }
  // A stray LF that ended the previous event's CRLF stays where it was.
  const lead = bytes[0] === LF ? '\n' : ''
  return encoder.encode(`${lead}${kept.join('\n')}\n\n`)
}

/** A line's field name and value; undefined for a comment or an empty line. */
function fieldOf(line: string): { name: string; value: string } | undefined {
  if (line === '' || line.startsWith(':')) return undefined
  const colon = line.indexOf(':')
  if (colon === -1) return { name: line, value: '' }
  const value = line.slice(colon + 1)
  return { name: line.slice(0, colon), value: value.startsWith(' ') ? value.slice(1) : value }
}

function joinBytes(pieces: Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(pieces.reduce((total, piece) => total + piece.length, 0))
  let offset = 0
  for (const piece of pieces) {
    joined.set(piece, offset)
    offset += piece.length
  }
  return joined
}

/**
 * The size of the SSE event being received: bytes since the last blank line (LF LF, CR LF CR LF
 * or CR CR), counted across chunks in one pass over each. `onBoundary` hears the index in the
 * chunk of each line end that closes an event, for callers that cut events out.
 */
export class EventSizer {
  private size = 0
  private lineEmpty = true
  private afterCr = false

  /** Adds a chunk; returns the size of the event still open after it. */
  add(chunk: Uint8Array, onBoundary?: (index: number) => void): number {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]
      if (byte === LF && this.afterCr) {
        this.afterCr = false
        continue
      }
      if (byte === LF || byte === CR) {
        if (this.lineEmpty) {
          if (this.size > 0) onBoundary?.(i)
          this.size = 0
        } else this.size++
        this.lineEmpty = true
        this.afterCr = byte === CR
        continue
      }
      this.afterCr = false
      this.lineEmpty = false
      this.size++
    }
    return this.size
  }
}

/**
 * Cuts an SSE stream into its events' raw bytes as chunks arrive, each byte looked at once; what
 * waits for its blank line is kept as the chunks it came in, never as a growing string.
 */
export class SseEventSplitter {
  private readonly sizer = new EventSizer()
  private parts: Uint8Array[] = []

  /** The complete events in `chunk` (with what came before it); the open one's size is `pending`. */
  push(chunk: Uint8Array): Uint8Array[] {
    const events: Uint8Array[] = []
    let start = 0
    this.pending = this.sizer.add(chunk, (index) => {
      this.parts.push(chunk.subarray(start, index))
      events.push(joinBytes(this.parts))
      this.parts = []
      start = index + 1
    })
    if (start < chunk.length) this.parts.push(chunk.subarray(start))
    return events
  }

  pending = 0
}
