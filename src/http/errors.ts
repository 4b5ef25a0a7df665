import { t } from 'elysia'

export interface ApiErrorBody {
  message: string
  detail?: string
  validations?: { field: string; detail: string }[]
}

/** The one JSON error shape of the management API (DESIGN.md). */
export const apiErrorSchema = t.Object(
  {
    message: t.String(),
    detail: t.Optional(t.String()),
    validations: t.Optional(t.Array(t.Object({ field: t.String(), detail: t.String() }))),
  },
  { description: 'Error' },
)

export const ErrorModel = { 'api.error': apiErrorSchema }

/**
 * An error framework-free code throws for an outcome the client must see. Carries its HTTP
 * status and serialises itself, so the global error handler needs no per-type switch.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.name = 'ApiError'
  }

  toResponse(): Response {
    const body: ApiErrorBody = { message: this.message }
    if (this.detail) body.detail = this.detail
    return Response.json(body, { status: this.status, headers: this.headers })
  }
}

export function jsonError(status: number, body: ApiErrorBody, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers })
}
