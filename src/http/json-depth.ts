/**
 * How deeply a JSON body posted to an MCP endpoint may nest. JSON-RPC messages need a handful of
 * levels and tool arguments rarely a dozen; the limit is far above that and far below what makes
 * code that walks or serialises a value (`JSON.stringify`, schema validation) overflow its stack.
 */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

/**
 * Whether JSON text nests arrays and objects deeper than `limit`, found by one pass over the
 * characters with a counter, skipping strings: no recursion and nothing parsed, so it is safe on
 * any input and cheap enough to run before `JSON.parse`. Text that is not JSON gets an answer
 * too; the parser refuses it afterwards.
 */
export function exceedsJsonDepth(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i)
        if (s === BACKSLASH) i++
        else if (s === QUOTE) break
      }
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > limit) return true
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) depth--
  }
  return false
}
