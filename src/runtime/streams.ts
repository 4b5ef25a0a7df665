/**
 * A body that starts with `first`, then carries `body` as it comes. On Bun a direct stream writes
 * each chunk straight to the socket, a fraction of what a TransformStream costs per exchange (a
 * proxied call spends more in the transform than in everything else it does); elsewhere the
 * standard TransformStream. Either way each chunk is flushed as it arrives, and cancelling the
 * result cancels `body`.
 */
export function prependChunk(first: Uint8Array, body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  if (typeof Bun === 'undefined')
    return body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        start(controller) {
          controller.enqueue(first)
        },
      }),
    )
  const reader = body.getReader()
  const source = {
    type: 'direct' as const,
    async pull(controller: ReadableStreamDirectController) {
      try {
        await controller.write(first)
        await controller.flush()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          // 0: the client has gone; stop reading from upstream.
          if ((await controller.write(value)) === 0) {
            await reader.cancel().catch(() => {})
            break
          }
          await controller.flush()
        }
        controller.close()
      } catch (error) {
        await reader.cancel(error).catch(() => {})
        controller.close(error instanceof Error ? error : new Error(String(error)))
      }
    },
    cancel(reason: unknown) {
      return reader.cancel(reason)
    },
  }
  return new ReadableStream(source as unknown as UnderlyingDefaultSource<Uint8Array>)
}
