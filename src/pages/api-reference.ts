import { escapeHtml, renderPage } from './html.ts'

/**
 * The API reference at `/openapi`, rendered by the server from Gatehouse's own OpenAPI document.
 * An authorization server's origin must run no third-party script, and a self-hosted one may
 * have no Internet, so the page loads nothing at all: every operation is a `<details>` element
 * that opens without JavaScript, and each schema is listed with its fields. The document itself
 * stays at `/openapi/json` for client generators and API tools.
 */

type Schema = Record<string, unknown>

interface Operation {
  tags?: string[]
  summary?: string
  description?: string
  operationId?: string
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: Schema }[]
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> }
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>
}

export interface OpenApiDocument {
  info?: { title?: string; version?: string; description?: string }
  paths?: Record<string, Record<string, Operation>>
  components?: {
    schemas?: Record<string, Schema>
    securitySchemes?: Record<
      string,
      { type?: string; scheme?: string; in?: string; name?: string; description?: string }
    >
  }
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']
/** Nested objects shown inline this deep; past it, the type alone. */
const MAX_DEPTH = 4

const STYLE = `
  main.reference { width: min(64rem, calc(100% - 1rem)); margin: .5rem 0; }
  .reference h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; text-transform: capitalize; }
  .reference h2.plain { text-transform: none; }
  .reference h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  .reference h4 { font-size: .9rem; margin: .9rem 0 .3rem; }
  .toc { columns: 14rem; padding-left: 1.2rem; }
  details.operation { border: 1px solid #8884; border-radius: 8px; margin: .4rem 0; }
  details.operation > summary { cursor: pointer; padding: .5rem .7rem; display: flex; flex-wrap: wrap; gap: .2rem .6rem; align-items: baseline; }
  details.operation > div { padding: 0 .9rem .8rem; }
  .method { display: inline-block; min-width: 4.2rem; font: 700 .8rem ui-monospace, monospace; text-transform: uppercase; }
  .method.get { color: #1a7f37; } .method.post { color: #2457d6; } .method.put, .method.patch { color: #b35900; } .method.delete { color: #c22; }
  .path { font-weight: 600; overflow-wrap: anywhere; }
  table.fields { border-collapse: collapse; width: 100%; font-size: .9rem; }
  table.fields th, table.fields td { text-align: left; vertical-align: top; padding: .3rem .5rem .3rem 0; border-top: 1px solid #8883; }
  ul.fields { list-style: none; padding-left: 1rem; margin: .2rem 0; border-left: 2px solid #8883; }
  ul.fields li { margin: .25rem 0; }
  .type { font-family: ui-monospace, monospace; font-size: .85rem; }
  .required { color: #c22; font-size: .8rem; }
`

function anchorOf(kind: string, name: string): string {
  return `${kind}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
}

function refName(ref: string): string {
  return ref.replace(/^#\/components\/schemas\//, '')
}

const code = (text: string) => `<code>${escapeHtml(text)}</code>`

/** A schema's type on one line: a link for a named schema, literals for enums, `array of …`, unions. */
function typeOf(schema: Schema | undefined): string {
  if (!schema) return 'any'
  if (typeof schema.$ref === 'string') {
    const name = refName(schema.$ref)
    return `<a href="#${anchorOf('schema', name)}">${code(name)}</a>`
  }
  if ('const' in schema) return code(JSON.stringify(schema.const))
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => code(JSON.stringify(value))).join(' | ')
  const union = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined
  if (Array.isArray(union)) return union.map(typeOf).join(' | ')
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : schema.type ? [String(schema.type)] : []
  const named = types.map((type) =>
    type === 'array' ? `array of ${typeOf(schema.items as Schema | undefined)}` : escapeHtml(type),
  )
  const format = typeof schema.format === 'string' ? ` (${escapeHtml(schema.format)})` : ''
  return named.length ? `${named.join(' | ')}${format}` : 'any'
}

/** Limits and defaults worth knowing before sending a value. */
function constraintsOf(schema: Schema): string {
  const parts: string[] = []
  const add = (label: string, key: string) => {
    if (schema[key] !== undefined) parts.push(`${label} ${escapeHtml(JSON.stringify(schema[key]))}`)
  }
  add('min length', 'minLength')
  add('max length', 'maxLength')
  add('minimum', 'minimum')
  add('maximum', 'maximum')
  add('at most', 'maxItems')
  add('pattern', 'pattern')
  add('default', 'default')
  return parts.length ? ` <span class="muted">${parts.join(', ')}</span>` : ''
}

/** The object a schema describes fields of, if any: itself, or an array's items. */
function objectOf(schema: Schema | undefined): Schema | undefined {
  if (!schema) return undefined
  if (schema.properties && typeof schema.properties === 'object') return schema
  if (schema.type === 'array' && schema.items && typeof schema.items === 'object')
    return objectOf(schema.items as Schema)
  return undefined
}

/** An object's fields as a nested list: name, type, required, limits, description. */
function fieldsOf(schema: Schema | undefined, depth = 0): string {
  const object = objectOf(schema)
  if (!object || depth >= MAX_DEPTH) return ''
  const required = new Set(Array.isArray(object.required) ? (object.required as string[]) : [])
  const items = Object.entries(object.properties as Record<string, Schema>).map(([name, field]) => {
    const description = typeof field.description === 'string' ? ` — ${escapeHtml(field.description)}` : ''
    const mark = required.has(name) ? ' <span class="required">required</span>' : ''
    return `<li>${code(name)} <span class="type">${typeOf(field)}</span>${mark}${constraintsOf(field)}${description}${fieldsOf(field, depth + 1)}</li>`
  })
  return items.length ? `\n<ul class="fields">\n${items.join('\n')}\n</ul>` : ''
}

/**
 * A body or response schema: its content types and type (a link to a named schema). `expand`
 * lists the fields too, of a named schema as well: what to send belongs beside the operation.
 */
function schemaBlock(
  content: Record<string, { schema?: Schema }> | undefined,
  expand?: (schema: Schema | undefined) => Schema | undefined,
): string {
  const entries = Object.entries(content ?? {})
  if (entries.length === 0) return ''
  const types = entries.map(([type]) => code(type)).join(', ')
  const schema = entries[0][1].schema
  const fields = expand ? fieldsOf(expand(schema)) : schema?.$ref ? '' : fieldsOf(schema)
  return ` <span class="muted">${types}</span>: <span class="type">${typeOf(schema)}</span>${fields}`
}

/** Elysia's stand-in when a response has no description of its own; it says nothing. */
const GENERIC_DESCRIPTION = /^Response for status \d+$/

function parametersOf(operation: Operation): string {
  const parameters = operation.parameters ?? []
  if (parameters.length === 0) return ''
  const rows = parameters.map(
    (parameter) =>
      `<tr><td>${code(parameter.name)}${parameter.required ? ' <span class="required">required</span>' : ''}</td><td>${escapeHtml(parameter.in)}</td><td class="type">${typeOf(parameter.schema)}${parameter.schema ? constraintsOf(parameter.schema) : ''}</td><td>${escapeHtml(parameter.description ?? '')}</td></tr>`,
  )
  return `<h4>Parameters</h4>
<table class="fields"><thead><tr><th>name</th><th>in</th><th>type</th><th></th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`
}

function operationOf(
  method: string,
  path: string,
  operation: Operation,
  resolve: (schema: Schema | undefined) => Schema | undefined,
): string {
  const id = anchorOf('op', operation.operationId ?? `${method} ${path}`)
  const description = operation.description ? `<p>${escapeHtml(operation.description)}</p>` : ''
  const body = operation.requestBody
    ? `<h4>Request body${operation.requestBody.required ? ' <span class="required">required</span>' : ''}</h4>\n<div>${schemaBlock(operation.requestBody.content, resolve) || 'any'}</div>`
    : ''
  const responses = Object.entries(operation.responses ?? {})
  const answers = responses.length
    ? `<h4>Responses</h4>\n<ul class="fields">\n${responses
        .map(
          ([status, response]) =>
            `<li>${code(status)} ${escapeHtml(GENERIC_DESCRIPTION.test(response.description ?? '') ? '' : (response.description ?? ''))}${schemaBlock(response.content)}</li>`,
        )
        .join('\n')}\n</ul>`
    : ''
  return `<details class="operation" id="${id}">
<summary><span class="method ${escapeHtml(method)}">${escapeHtml(method)}</span> <span class="path">${escapeHtml(path)}</span> <span>${escapeHtml(operation.summary ?? '')}</span></summary>
<div>
${description}
${parametersOf(operation)}
${body}
${answers}
</div>
</details>`
}

function securityOf(document: OpenApiDocument): string {
  const schemes = Object.entries(document.components?.securitySchemes ?? {})
  if (schemes.length === 0) return ''
  const items = schemes.map(([name, scheme]) => {
    const how =
      scheme.type === 'http'
        ? `<code>Authorization: ${escapeHtml(scheme.scheme === 'bearer' ? 'Bearer' : (scheme.scheme ?? ''))} …</code>`
        : scheme.in === 'cookie'
          ? `the ${code(scheme.name ?? '')} cookie`
          : `${code(scheme.name ?? '')} in the ${escapeHtml(scheme.in ?? '')}`
    return `<li>${code(name)}: ${how}${scheme.description ? ` — ${escapeHtml(scheme.description)}` : ''}</li>`
  })
  return `<h2 class="plain">Authentication</h2>\n<ul>\n${items.join('\n')}\n</ul>`
}

/** The page body for a document: built once per document, since the routes do not change while serving. */
export function renderApiReferenceBody(document: OpenApiDocument, documentUrl: string): string {
  const named = document.components?.schemas ?? {}
  const resolve = (schema: Schema | undefined) =>
    typeof schema?.$ref === 'string' ? named[refName(schema.$ref)] : schema
  const byTag = new Map<string, string[]>()
  for (const [path, operations] of Object.entries(document.paths ?? {}))
    for (const method of METHODS) {
      const operation = operations[method]
      if (!operation) continue
      const tag = operation.tags?.[0] ?? 'other'
      byTag.set(tag, [...(byTag.get(tag) ?? []), operationOf(method, path, operation, resolve)])
    }
  const schemas = Object.entries(document.components?.schemas ?? {})
  const toc = [
    ...[...byTag.keys()].map((tag) => `<li><a href="#${anchorOf('tag', tag)}">${escapeHtml(tag)}</a></li>`),
    schemas.length ? '<li><a href="#schemas">Schemas</a></li>' : '',
  ].join('\n')
  const sections = [...byTag].map(
    ([tag, operations]) =>
      `<section id="${anchorOf('tag', tag)}">\n<h2>${escapeHtml(tag)}</h2>\n${operations.join('\n')}\n</section>`,
  )
  const components = schemas.map(
    ([name, schema]) =>
      `<section id="${anchorOf('schema', name)}">\n<h3>${code(name)} <span class="type muted">${typeOf({ ...schema, description: undefined })}</span></h3>${typeof schema.description === 'string' ? `\n<p>${escapeHtml(schema.description)}</p>` : ''}${fieldsOf(schema)}\n</section>`,
  )
  const { title = 'API', version = '', description = '' } = document.info ?? {}
  return `<h1>${escapeHtml(title)} <span class="muted">${escapeHtml(version)}</span></h1>
<p>${escapeHtml(description)}</p>
<p class="muted">The OpenAPI document behind this page, for client generators and API tools: <a href="${escapeHtml(documentUrl)}">${escapeHtml(documentUrl)}</a>.</p>
${securityOf(document)}
<h2 class="plain">Contents</h2>
<ul class="toc">
${toc}
</ul>
${sections.join('\n')}
${schemas.length ? `<section id="schemas">\n<h2 class="plain">Schemas</h2>\n${components.join('\n')}\n</section>` : ''}`
}

/** The reference page: no script, no asset, nothing but this response's own inline style. */
export function renderApiReferencePage(title: string, body: string): Response {
  return renderPage({ status: 200, title, body, style: STYLE, mainClass: 'reference' })
}
