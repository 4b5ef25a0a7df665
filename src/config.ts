import { join, resolve } from 'node:path'
import { parseAllowHosts } from './http/address-policy.ts'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface EncryptionKeySpec {
  id: string
  key: Uint8Array
}

export interface Config {
  port: number
  host: string
  /** The URL clients reach us at, without a trailing slash; the OAuth issuer. */
  publicUrl: string
  databaseUrl: string
  dataDir: string
  /** Newest first; empty means "use (or create) the key file in the data directory". */
  encryptionKeys: EncryptionKeySpec[]
  logLevel: LogLevel
  maxBodyBytes: number
  sessionTtlSeconds: number
  trustProxy: boolean
  loginMaxFailures: number
  loginWindowSeconds: number
  shutdownTimeoutSeconds: number
  accessTokenTtlSeconds: number
  refreshTokenTtlSeconds: number
  refreshGraceSeconds: number
  dynamicClientTtlSeconds: number
  registrationRateLimit: number
  outboundAllowPrivate: boolean
  /** Host names, `*.suffix` wildcards, addresses and CIDRs the outbound guard may reach at private addresses. */
  outboundAllowHosts: string[]
  outboundCaFile: string | undefined
  mcpFastPath: boolean
  upstreamRefreshSkewSeconds: number
  upstreamTimeoutSeconds: number
  /** Concurrent outbound requests the runtime serves (Bun reads `BUN_CONFIG_MAX_HTTP_REQUESTS` at start). */
  outboundRuntimeLimit: number
  /** Long-lived upstream streams held at once: in all, per user, per server. */
  upstreamMaxStreams: number
  upstreamMaxStreamsPerUser: number
  upstreamMaxStreamsPerServer: number
  /** An upstream stream that delivers nothing for this long is closed. */
  upstreamStreamIdleSeconds: number
  /** Largest answer Gatehouse reads from an upstream for one request (a list, a tool result, one event). */
  upstreamMaxResponseBytes: number
  /** Most entries one upstream list may hold. */
  upstreamMaxListItems: number
  /** Browser origins (besides the public URL's) allowed to call `/mcp`, as serialised origins. */
  allowedOrigins: string[]
  /** A generic OpenID Connect login provider, when its issuer and client are configured. */
  oidc:
    | { issuer: string; clientId: string; clientSecret: string | undefined; scopes: string[]; displayName: string }
    | undefined
  oidcAllowSignups: boolean
  /** GitHub (or GitHub Enterprise) login, when its client is configured. */
  github: { clientId: string; clientSecret: string; url: string; apiUrl: string } | undefined
  passwordLogin: boolean
  /** When set, `/metrics` answers only `Authorization: Bearer <this>`. */
  metricsToken: string | undefined
  /** OpenTelemetry trace export, when an OTLP endpoint is configured; undefined turns tracing off. */
  tracing: TracingConfig | undefined
}

export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio'

export interface TracingConfig {
  /** Where spans are POSTed (OTLP/HTTP, JSON encoding). */
  url: string
  /** Sent with every export (a collector's API key). */
  headers: Record<string, string>
  serviceName: string
  sampler: SamplerName
  /** The ratio of the `traceidratio` samplers, 0 to 1. */
  samplerRatio: number
}

/** One documented variable: its name, default and how it is read. Drives both parsing and the README table. */
interface Variable<K extends keyof Config> {
  name: string
  field: K
  default: string | undefined
  description: string
  parse: (raw: string, env: Record<string, string | undefined>) => Config[K]
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
  }
}

/** A problem with one variable's value; the loader prefixes the variable name. */
class BadValue extends Error {}

const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error']

function parseInteger(min: number, max: number) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new BadValue(`must be a whole number, got "${raw}"`)
    const value = Number(raw)
    if (value < min || value > max) throw new BadValue(`must be between ${min} and ${max}, got ${value}`)
    return value
  }
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** Durations are written `90s`, `15m`, `12h` or `7d` (a bare number means seconds). */
export function parseDuration(raw: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(raw.trim())
  if (!match) throw new BadValue(`must be a duration such as 90s, 15m, 12h or 7d, got "${raw}"`)
  const seconds = Number(match[1]) * DURATION_UNITS[match[2] || 's']
  if (seconds <= 0) throw new BadValue('must be longer than zero')
  return seconds
}

function parseBoolean(raw: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(value)) return true
  if (['0', 'false', 'no', 'off', ''].includes(value)) return false
  throw new BadValue(`must be true or false, got "${raw}"`)
}

function parsePublicUrl(raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new BadValue(`must be an absolute http(s) URL, got "${raw}"`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new BadValue(`must use http or https, got "${url.protocol}"`)
  if (url.search || url.hash || /[?#]/.test(raw)) throw new BadValue('must not have a query or fragment')
  if (url.username || url.password) throw new BadValue('must not contain credentials')
  return url.href.replace(/\/+$/, '')
}

/**
 * `https://app.example.com,http://localhost:6274`: browser origins allowed to call `/mcp` (CORS).
 * Each must be a bare http(s) origin, as a browser sends it in `Origin`; `*` is refused, since it
 * would switch off the DNS-rebinding protection.
 */
function parseOrigins(raw: string): string[] {
  const origins: string[] = []
  for (const entry of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    let url: URL | undefined
    try {
      url = new URL(entry)
    } catch {
      url = undefined
    }
    if (
      !url ||
      (url.protocol !== 'http:' && url.protocol !== 'https:') ||
      url.username ||
      url.password ||
      url.pathname !== '/' ||
      /[?#]/.test(entry)
    )
      throw new BadValue(
        `each entry must be an http(s) origin such as https://app.example.com (no path), got "${entry}"`,
      )
    if (!origins.includes(url.origin)) origins.push(url.origin)
  }
  return origins
}

function parseAbsoluteUrl(name: string, raw: string): string {
  const url = URL.parse(raw.trim())
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash)
    throw new BadValue(`${name} must be an absolute http(s) URL without query or fragment, got "${raw}"`)
  return url.href.replace(/\/+$/, '')
}

/**
 * The OpenID Connect provider from its five variables, read together (each row of the table parses
 * all of them, so the first one present reports a problem and the rest agree).
 */
function parseOidc(_raw: string, env: Record<string, string | undefined>): Config['oidc'] {
  const issuer = env.GATEHOUSE_OIDC_ISSUER?.trim()
  const clientId = env.GATEHOUSE_OIDC_CLIENT_ID?.trim()
  if (!issuer && !clientId) return undefined
  if (!issuer) throw new BadValue('needs GATEHOUSE_OIDC_ISSUER too')
  if (!clientId) throw new BadValue('needs GATEHOUSE_OIDC_CLIENT_ID too')
  const url = URL.parse(issuer)
  if (!url || (url.protocol !== 'https:' && !['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)))
    throw new BadValue(`the issuer must be an https URL (http only on loopback), got "${issuer}"`)
  if (url.search || url.hash || /[?#]/.test(issuer)) throw new BadValue('the issuer must not have a query or fragment')
  const scopes = (env.GATEHOUSE_OIDC_SCOPES ?? 'openid email profile offline_access').split(/\s+/).filter(Boolean)
  if (!scopes.includes('openid')) throw new BadValue('GATEHOUSE_OIDC_SCOPES must include openid')
  return {
    // As written: discovery compares it with the provider's `issuer`, which may end in a slash (Auth0).
    issuer,
    clientId,
    clientSecret: env.GATEHOUSE_OIDC_CLIENT_SECRET?.trim() || undefined,
    scopes,
    displayName: env.GATEHOUSE_OIDC_DISPLAY_NAME?.trim() || 'Single sign-on',
  }
}

function parseGithub(_raw: string, env: Record<string, string | undefined>): Config['github'] {
  const clientId = env.GATEHOUSE_GITHUB_CLIENT_ID?.trim()
  const clientSecret = env.GATEHOUSE_GITHUB_CLIENT_SECRET?.trim()
  if (!clientId && !clientSecret) return undefined
  if (!clientId) throw new BadValue('needs GATEHOUSE_GITHUB_CLIENT_ID too')
  if (!clientSecret) throw new BadValue('needs GATEHOUSE_GITHUB_CLIENT_SECRET too')
  const url = env.GATEHOUSE_GITHUB_URL
    ? parseAbsoluteUrl('GATEHOUSE_GITHUB_URL', env.GATEHOUSE_GITHUB_URL)
    : 'https://github.com'
  return {
    clientId,
    clientSecret,
    url,
    apiUrl: url === 'https://github.com' ? 'https://api.github.com' : `${url}/api/v3`,
  }
}

function parseDatabaseUrl(raw: string): string {
  const value = raw.trim()
  if (value === ':memory:' || value.startsWith('sqlite:') || /^postgres(ql)?:\/\//.test(value)) return value
  // Never echo a password written into the URL.
  const shown = value.replace(/\/\/[^@/]*@/, '//***@')
  throw new BadValue(`must be sqlite:<path>, :memory: or postgres://…, got "${shown}"`)
}

/** `id:base64key,id:base64key`, newest first. Each key is 32 bytes (AES-256). */
export function parseEncryptionKeys(raw: string): EncryptionKeySpec[] {
  const keys: EncryptionKeySpec[] = []
  for (const entry of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const separator = entry.indexOf(':')
    const id = separator > 0 ? entry.slice(0, separator) : ''
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(id))
      throw new BadValue(`each key must be written id:base64key with an id of letters, digits, _ or -`)
    let key: Uint8Array
    try {
      key = Uint8Array.from(atob(entry.slice(separator + 1)), (c) => c.charCodeAt(0))
    } catch {
      throw new BadValue(`key "${id}" is not valid base64`)
    }
    if (key.length !== 32) throw new BadValue(`key "${id}" must decode to 32 bytes, got ${key.length}`)
    if (keys.some((k) => k.id === id)) throw new BadValue(`key id "${id}" appears twice`)
    keys.push({ id, key })
  }
  return keys
}

/** A bearer token as a scraper sends it: visible ASCII without spaces; empty leaves `/metrics` open. */
function parseMetricsToken(raw: string): string | undefined {
  const value = raw.trim()
  if (value === '') return undefined
  if (!/^[\x21-\x7e]+$/.test(value)) throw new BadValue('must be visible ASCII characters without spaces')
  return value
}

const SAMPLERS: SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
]

/** `key=value,key2=value2`, values percent-encoded (the OpenTelemetry specification's format). */
function parseOtlpHeaders(raw: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const entry of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const separator = entry.indexOf('=')
    const name = separator > 0 ? entry.slice(0, separator).trim() : ''
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new BadValue('OTEL_EXPORTER_OTLP_HEADERS must be written key=value,key2=value2')
    try {
      headers[name.toLowerCase()] = decodeURIComponent(entry.slice(separator + 1).trim())
    } catch {
      throw new BadValue(`OTEL_EXPORTER_OTLP_HEADERS: the value of ${name} is not valid percent-encoding`)
    }
  }
  return headers
}

/**
 * The standard OpenTelemetry variables, read together (every row of the group parses all of them):
 * no endpoint, no tracing. The base endpoint gets `/v1/traces` appended; the traces endpoint is
 * used as written. Only OTLP over HTTP: gRPC needs a client this build does not carry.
 */
function parseTracing(_raw: string, env: Record<string, string | undefined>): Config['tracing'] {
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
  const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  if (!tracesEndpoint && !baseEndpoint) return undefined
  const url = tracesEndpoint
    ? parseAbsoluteUrl('the endpoint', tracesEndpoint)
    : `${parseAbsoluteUrl('the endpoint', baseEndpoint as string)}/v1/traces`
  const protocol = env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim()
  if (protocol === 'grpc') throw new BadValue('grpc is not supported: use http/json (OTLP over HTTP)')
  const sampler = (env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || 'parentbased_always_on') as SamplerName
  if (!SAMPLERS.includes(sampler))
    throw new BadValue(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(', ')}, got "${sampler}"`)
  const ratioText = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  const samplerRatio = ratioText ? Number(ratioText) : 1
  if (!Number.isFinite(samplerRatio) || samplerRatio < 0 || samplerRatio > 1)
    throw new BadValue(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got "${ratioText}"`)
  return {
    url,
    headers: parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS ?? ''),
    serviceName: env.OTEL_SERVICE_NAME?.trim() || 'gatehouse',
    sampler,
    samplerRatio,
  }
}

function parseHost(raw: string): string {
  const value = raw.trim()
  if (!value || /[\s/]/.test(value)) throw new BadValue(`must be a host name or address, got "${raw}"`)
  return value
}

export const VARIABLES: Variable<keyof Config>[] = [
  { name: 'PORT', field: 'port', default: '3000', description: 'TCP port to listen on', parse: parseInteger(1, 65535) },
  { name: 'GATEHOUSE_HOST', field: 'host', default: '0.0.0.0', description: 'Address to bind', parse: parseHost },
  {
    name: 'GATEHOUSE_PUBLIC_URL',
    field: 'publicUrl',
    default: undefined,
    description: 'URL clients use to reach Gatehouse; the OAuth issuer (default `http://localhost:$PORT`)',
    parse: parsePublicUrl,
  },
  {
    name: 'GATEHOUSE_DATA_DIR',
    field: 'dataDir',
    default: './data',
    description: 'Directory for the embedded SQLite database and the generated key file',
    parse: (raw) => resolve(raw),
  },
  {
    name: 'DATABASE_URL',
    field: 'databaseUrl',
    default: undefined,
    description:
      '`sqlite:<path>`, `:memory:` or `postgres://user@host:port/db` (default `sqlite:$GATEHOUSE_DATA_DIR/gatehouse.db`)',
    parse: parseDatabaseUrl,
  },
  {
    name: 'GATEHOUSE_ENCRYPTION_KEYS',
    field: 'encryptionKeys',
    default: undefined,
    description:
      'Keys for secrets at rest, `id:base64(32 bytes)` separated by commas, newest first (default: a key generated into `$GATEHOUSE_DATA_DIR/encryption-key` on first start)',
    parse: parseEncryptionKeys,
  },
  {
    name: 'GATEHOUSE_LOG_LEVEL',
    field: 'logLevel',
    default: 'info',
    description: '`debug`, `info`, `warn` or `error`',
    parse: (raw) => {
      const value = raw.trim().toLowerCase() as LogLevel
      if (!LOG_LEVELS.includes(value)) throw new BadValue(`must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`)
      return value
    },
  },
  {
    name: 'GATEHOUSE_MAX_BODY_BYTES',
    field: 'maxBodyBytes',
    default: '1048576',
    description: 'Largest request body accepted; larger bodies get 413',
    parse: parseInteger(1024, 1024 * 1024 * 1024),
  },
  {
    name: 'GATEHOUSE_SESSION_TTL',
    field: 'sessionTtlSeconds',
    default: '7d',
    description: 'Lifetime of a login session',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_TRUST_PROXY',
    field: 'trustProxy',
    default: 'false',
    description: 'Take the client address from `X-Forwarded-For` (only behind a proxy you run)',
    parse: parseBoolean,
  },
  {
    name: 'GATEHOUSE_LOGIN_MAX_FAILURES',
    field: 'loginMaxFailures',
    default: '5',
    description: 'Failed logins per account (and 4× that per client address) before further attempts wait',
    parse: parseInteger(1, 1000),
  },
  {
    name: 'GATEHOUSE_LOGIN_WINDOW',
    field: 'loginWindowSeconds',
    default: '15m',
    description: 'Window in which failed logins are counted, and how long a throttled login waits',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_SHUTDOWN_TIMEOUT',
    field: 'shutdownTimeoutSeconds',
    default: '30s',
    description: 'On SIGTERM, how long in-flight requests may take before the process exits anyway',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_ACCESS_TOKEN_TTL',
    field: 'accessTokenTtlSeconds',
    default: '1h',
    description: 'Lifetime of an OAuth access token',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_REFRESH_TOKEN_TTL',
    field: 'refreshTokenTtlSeconds',
    default: '30d',
    description: 'Lifetime of an OAuth refresh token (each refresh issues a new one)',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_REFRESH_GRACE',
    field: 'refreshGraceSeconds',
    default: '10s',
    description:
      'How long a just-used refresh token may be retried (a client that lost the response); reuse after that revokes the grant',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_DYNAMIC_CLIENT_TTL',
    field: 'dynamicClientTtlSeconds',
    default: '24h',
    description: 'Dynamically registered clients that never complete a sign-in are deleted after this',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_REGISTRATION_RATE_LIMIT',
    field: 'registrationRateLimit',
    default: '20',
    description:
      'Dynamic client registrations, and fetches of client metadata documents not seen before, per client address per hour',
    parse: parseInteger(1, 100000),
  },
  {
    name: 'GATEHOUSE_OUTBOUND_ALLOW_PRIVATE',
    field: 'outboundAllowPrivate',
    default: 'false',
    description:
      'Let outbound fetches (upstream MCP servers, client metadata documents) reach private and loopback addresses; link-local and cloud metadata addresses stay refused',
    parse: parseBoolean,
  },
  {
    name: 'GATEHOUSE_OUTBOUND_ALLOW_HOSTS',
    field: 'outboundAllowHosts',
    default: undefined,
    description:
      'Host names (`mcp.internal`, `*.corp.example`), addresses and CIDRs (`10.1.0.0/16`) that outbound fetches may reach at private addresses, comma-separated, without opening every private range',
    parse: (raw) => {
      try {
        return parseAllowHosts(raw)
      } catch (error) {
        throw new BadValue((error as Error).message)
      }
    },
  },
  {
    name: 'GATEHOUSE_OUTBOUND_CA_FILE',
    field: 'outboundCaFile',
    default: undefined,
    description: 'PEM file of extra certificate authorities trusted for those fetches (an internal CA)',
    parse: (raw) => resolve(raw),
  },
  {
    name: 'GATEHOUSE_MCP_FAST_PATH',
    field: 'mcpFastPath',
    default: 'true',
    description:
      'Answer plain `tools/call` requests without building a per-request SDK server (same bytes, a fraction of the cost)',
    parse: parseBoolean,
  },
  {
    name: 'GATEHOUSE_UPSTREAM_REFRESH_SKEW',
    field: 'upstreamRefreshSkewSeconds',
    default: '60s',
    description: "How long before a user's upstream OAuth access token expires Gatehouse refreshes it",
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_UPSTREAM_TIMEOUT',
    field: 'upstreamTimeoutSeconds',
    default: '60s',
    description:
      'How long an upstream MCP server may take to start answering (a stream that delivers events is never cut)',
    parse: parseDuration,
  },
  {
    name: 'BUN_CONFIG_MAX_HTTP_REQUESTS',
    field: 'outboundRuntimeLimit',
    default: '256',
    description:
      "Bun's own limit on concurrent outbound requests, read when the process starts (set it in the environment of `gatehouse serve`); `npm start` sets `1024` when it is unset",
    parse: parseInteger(1, 65_536),
  },
  {
    name: 'GATEHOUSE_UPSTREAM_MAX_STREAMS',
    field: 'upstreamMaxStreams',
    default: '128',
    description:
      'Long-lived upstream streams (passthrough event streams, SSE-transport sessions) held at once; at most half of `BUN_CONFIG_MAX_HTTP_REQUESTS` (256 unless set), so short requests always find a connection',
    parse: parseInteger(2, 100_000),
  },
  {
    name: 'GATEHOUSE_UPSTREAM_MAX_STREAMS_PER_USER',
    field: 'upstreamMaxStreamsPerUser',
    default: '16',
    description: 'Of those, how many one user may hold; past it a new stream is refused with 429',
    parse: parseInteger(1, 100_000),
  },
  {
    name: 'GATEHOUSE_UPSTREAM_MAX_STREAMS_PER_SERVER',
    field: 'upstreamMaxStreamsPerServer',
    default: '64',
    description: 'Of those, how many may go to one upstream server',
    parse: parseInteger(1, 100_000),
  },
  {
    name: 'GATEHOUSE_UPSTREAM_STREAM_IDLE',
    field: 'upstreamStreamIdleSeconds',
    default: '5m',
    description: 'An upstream stream that delivers nothing for this long is closed (clients open a new one)',
    parse: parseDuration,
  },
  {
    name: 'GATEHOUSE_UPSTREAM_MAX_RESPONSE_BYTES',
    field: 'upstreamMaxResponseBytes',
    default: '8388608',
    description:
      "Largest answer read from an upstream for one request (a list, a tool result) and largest single event of its streams; past it the answer is refused and the server's `last_error` says why",
    parse: parseInteger(1024, 1024 * 1024 * 1024),
  },
  {
    name: 'GATEHOUSE_UPSTREAM_MAX_LIST_ITEMS',
    field: 'upstreamMaxListItems',
    default: '2000',
    description: 'Most tools (prompts, resources) one upstream may list; a longer list is refused as a whole',
    parse: parseInteger(1, 1_000_000),
  },
  {
    name: 'GATEHOUSE_OIDC_ISSUER',
    field: 'oidc',
    default: undefined,
    description:
      'Issuer URL of an OpenID Connect provider to sign in with (Okta, Entra ID, Keycloak, Google…); its metadata is discovered',
    parse: parseOidc,
  },
  {
    name: 'GATEHOUSE_OIDC_CLIENT_ID',
    field: 'oidc',
    default: undefined,
    description: 'The client ID Gatehouse is registered under at the OpenID provider (with `GATEHOUSE_OIDC_ISSUER`)',
    parse: parseOidc,
  },
  {
    name: 'GATEHOUSE_OIDC_CLIENT_SECRET',
    field: 'oidc',
    default: undefined,
    description: 'Its client secret (leave unset for a public client)',
    parse: parseOidc,
  },
  {
    name: 'GATEHOUSE_OIDC_SCOPES',
    field: 'oidc',
    default: undefined,
    description: 'Scopes asked of the OpenID provider (default `openid email profile offline_access`)',
    parse: parseOidc,
  },
  {
    name: 'GATEHOUSE_OIDC_DISPLAY_NAME',
    field: 'oidc',
    default: undefined,
    description: "The provider's name on the sign-in button (default `Single sign-on`)",
    parse: parseOidc,
  },
  {
    name: 'GATEHOUSE_OIDC_ALLOW_SIGNUPS',
    field: 'oidcAllowSignups',
    default: 'true',
    description:
      'Create an account (a member of the default organization) for an identity-provider user with no account yet',
    parse: parseBoolean,
  },
  {
    name: 'GATEHOUSE_GITHUB_CLIENT_ID',
    field: 'github',
    default: undefined,
    description: 'Client ID of a GitHub OAuth app to sign in with (its callback: `<public url>/login/github/callback`)',
    parse: parseGithub,
  },
  {
    name: 'GATEHOUSE_GITHUB_CLIENT_SECRET',
    field: 'github',
    default: undefined,
    description: "That OAuth app's client secret",
    parse: parseGithub,
  },
  {
    name: 'GATEHOUSE_GITHUB_URL',
    field: 'github',
    default: undefined,
    description: 'GitHub Enterprise Server: its web URL (default `https://github.com`); the API is `<url>/api/v3`',
    parse: parseGithub,
  },
  {
    name: 'GATEHOUSE_PASSWORD_LOGIN',
    field: 'passwordLogin',
    default: 'true',
    description:
      'Offer sign-in with a password (`false` leaves only the identity providers; the CLI can still create an owner)',
    parse: parseBoolean,
  },
  {
    name: 'GATEHOUSE_ALLOWED_ORIGINS',
    field: 'allowedOrigins',
    default: undefined,
    description:
      "Browser origins allowed to call `/mcp` (CORS), comma-separated, besides the public URL's own (a loopback public URL allows every loopback origin)",
    parse: parseOrigins,
  },
  {
    name: 'GATEHOUSE_METRICS_TOKEN',
    field: 'metricsToken',
    default: undefined,
    description:
      'When set, `/metrics` answers only requests with `Authorization: Bearer <this token>` (Prometheus `authorization.credentials`), 401 otherwise; unset, it is open to anyone who can reach the server',
    parse: parseMetricsToken,
  },
  {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    field: 'tracing',
    default: undefined,
    description:
      'OpenTelemetry collector base URL (OTLP/HTTP); spans go to `<url>/v1/traces`. Unset (and no traces endpoint): no tracing',
    parse: parseTracing,
  },
  {
    name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    field: 'tracing',
    default: undefined,
    description: 'Full URL spans are sent to, instead of the base endpoint',
    parse: parseTracing,
  },
  {
    name: 'OTEL_EXPORTER_OTLP_HEADERS',
    field: 'tracing',
    default: undefined,
    description: 'Headers sent to the collector, `key=value,key2=value2` (percent-encoded values)',
    parse: parseTracing,
  },
  {
    name: 'OTEL_EXPORTER_OTLP_PROTOCOL',
    field: 'tracing',
    default: undefined,
    description: '`http/json` or `http/protobuf`; spans are sent as OTLP/HTTP JSON either way (`grpc` is refused)',
    parse: parseTracing,
  },
  {
    name: 'OTEL_SERVICE_NAME',
    field: 'tracing',
    default: undefined,
    description: "The spans' `service.name` (default `gatehouse`)",
    parse: parseTracing,
  },
  {
    name: 'OTEL_TRACES_SAMPLER',
    field: 'tracing',
    default: undefined,
    description:
      '`always_on`, `always_off`, `traceidratio` or `parentbased_` one of these (default `parentbased_always_on`: a client that sent `traceparent` decides)',
    parse: parseTracing,
  },
  {
    name: 'OTEL_TRACES_SAMPLER_ARG',
    field: 'tracing',
    default: undefined,
    description: 'The ratio of the `traceidratio` samplers, 0 to 1 (default `1`)',
    parse: parseTracing,
  },
]

/**
 * Reads and validates every variable, collecting all problems before failing so an operator
 * fixes them in one pass. Each problem is one line that starts with the variable's name.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = []
  const config: Partial<Record<keyof Config, unknown>> = {}
  const failed = new Set<keyof Config>()
  for (const variable of VARIABLES) {
    const raw = env[variable.name] ?? variable.default
    if (raw === undefined) continue
    try {
      config[variable.field] = variable.parse(raw, env)
    } catch (error) {
      if (!(error instanceof BadValue)) throw error
      // Variables read together (the OIDC and GitHub groups) share one problem: the first one set reports it.
      if (failed.has(variable.field)) continue
      failed.add(variable.field)
      problems.push(`${variable.name}: ${error.message}`)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)

  const port = config.port as number
  const dataDir = config.dataDir as string
  return {
    ...(config as Config),
    publicUrl: (config.publicUrl as string | undefined) ?? `http://localhost:${port}`,
    databaseUrl: (config.databaseUrl as string | undefined) ?? `sqlite:${join(dataDir, 'gatehouse.db')}`,
    encryptionKeys: (config.encryptionKeys as EncryptionKeySpec[] | undefined) ?? [],
    allowedOrigins: (config.allowedOrigins as string[] | undefined) ?? [],
    outboundAllowHosts: (config.outboundAllowHosts as string[] | undefined) ?? [],
    oidc: config.oidc as Config['oidc'],
    github: config.github as Config['github'],
    tracing: config.tracing as Config['tracing'],
  }
}

/**
 * The path the public URL puts in front of every route (`/gh` for `https://example.com/gh`),
 * for links and redirects the browser follows through a proxy that strips it; '' at the root.
 */
export function basePathOf(publicUrl: string): string {
  return new URL(publicUrl).pathname.replace(/\/+$/, '')
}

/** A configuration for tests and tools: defaults plus overrides, without reading the process environment. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ DATABASE_URL: ':memory:' }), ...overrides }
}
