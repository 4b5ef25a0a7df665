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
    readonly validations?: { field: string; detail: string }[],
  ) {
    super(message)
    this.name = 'ApiError'
  }

  toResponse(): Response {
    const body: ApiErrorBody = { message: this.message }
    if (this.detail) body.detail = this.detail
    if (this.validations) body.validations = this.validations
    return Response.json(body, { status: this.status, headers: this.headers })
  }
}

/** A 422 naming the field, for checks a schema cannot make (values compared after trimming, cross-field rules). */
export function invalidField(field: string, detail: string): ApiError {
  return new ApiError(422, 'Invalid request body', undefined, {}, [{ field, detail }])
}

export function jsonError(status: number, body: ApiErrorBody, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers })
}
