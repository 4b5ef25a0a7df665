/** Server-sent events read byte by byte as they arrive: sizes and boundaries, without building strings. */

const LF = 10
const CR = 13

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
      events.push(concat(this.parts))
      this.parts = []
      start = index + 1
    })
    if (start < chunk.length) this.parts.push(chunk.subarray(start))
    return events
  }

  pending = 0
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.byteLength
  }
  return out
}
