import { getSchemaValidator, type TSchema, ValidationError } from 'elysia'

/**
 * A `transform` hook that checks a request body against `schema` exactly as it was sent.
 *
 * Elysia normalises a body to its schema before it validates it: fields the schema does not name
 * are dropped, and a string, a number or an array sent where the schema wants a record comes out
 * as an object. A misspelt `tool_denylist` or `custom_headers: ["X-Team"]` would then be answered
 * 201 as if it had been understood. Run before that step, this refuses them as a validation error
 * naming the field (422), like any other wrong field.
 */
export function checkBodyAsSent(schema: TSchema) {
  const validator = getSchemaValidator(schema, { normalize: false })
  if (!validator) throw new Error('checkBodyAsSent needs a schema')
  return ({ body }: { body: unknown }) => {
    if (!validator.Check(body)) throw new ValidationError('body', validator, body)
  }
}
