import type { LogLevel } from '../config.ts'
import { currentRequestContext } from './request-context.ts'

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type LogFields = Record<string, unknown>

export interface Logger {
  /** Whether lines of this level are written; lets hot paths skip building fields for nothing. */
  enabled(level: LogLevel): boolean
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

/**
 * One JSON object per line. Lines written while a request is being handled carry its
 * `request_id`. Callers pass fields, never tokens, codes, secrets or passwords.
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  const log = (lineLevel: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[lineLevel] < RANK[level]) return
    const requestId = currentRequestContext()?.requestId
    const line: LogFields = { time: new Date().toISOString(), level: lineLevel, msg: message }
    if (requestId) line.request_id = requestId
    for (const [key, value] of Object.entries(fields ?? {}))
      line[key] = value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value
    write(`${JSON.stringify(line)}\n`)
  }
  return {
    enabled: (lineLevel) => RANK[lineLevel] >= RANK[level],
    debug: (message, fields) => log('debug', message, fields),
    info: (message, fields) => log('info', message, fields),
    warn: (message, fields) => log('warn', message, fields),
    error: (message, fields) => log('error', message, fields),
  }
}

export const silentLogger: Logger = { enabled: () => false, debug() {}, info() {}, warn() {}, error() {} }
