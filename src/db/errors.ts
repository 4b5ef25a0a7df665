/** True for a unique-constraint violation on either dialect (SQLite message, Postgres SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  return (error as { code?: string }).code === '23505' || /UNIQUE constraint failed/i.test(error.message)
}

/** True for a CHECK-constraint violation on either dialect (SQLite message, Postgres SQLSTATE 23514). */
export function isCheckViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  return (error as { code?: string }).code === '23514' || /CHECK constraint failed/i.test(error.message)
}
