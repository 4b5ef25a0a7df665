/** API timestamps are RFC 3339 strings; the database keeps unix seconds. */
export function toIsoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString()
}

export function toIsoTimeOrNull(seconds: number | null): string | null {
  return seconds === null ? null : toIsoTime(seconds)
}
