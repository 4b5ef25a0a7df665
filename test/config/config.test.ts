import { afterEach, describe, expect, it } from 'bun:test'
import { resolve } from 'node:path'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { cliEnv, createTempDir, killChildren, runCli } from '../fixtures/cli-process.ts'

const KEY_A = btoa(String.fromCharCode(...new Uint8Array(32).fill(1)))
const KEY_B = btoa(String.fromCharCode(...new Uint8Array(32).fill(2)))

/** The problems loadConfig reports for `env`; fails the test if it accepts it. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`)
}

describe('loadConfig defaults', () => {
  it('starts on port 3000 on every interface with info logging when nothing is set', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({ port: 3000, host: '0.0.0.0', logLevel: 'info', trustProxy: false })
  })

  it('keeps data, the SQLite database and no configured keys under ./data by default', () => {
    const config = loadConfig({})
    expect(config.dataDir).toBe(resolve('data'))
    expect(config.databaseUrl).toBe(`sqlite:${resolve('data', 'gatehouse.db')}`)
    expect(config.encryptionKeys).toEqual([])
  })

  it('limits bodies to 1 MiB, sessions to 7 days and shutdown to 30 seconds by default', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      maxBodyBytes: 1048576,
      sessionTtlSeconds: 7 * 86400,
      loginMaxFailures: 5,
      loginWindowSeconds: 15 * 60,
      shutdownTimeoutSeconds: 30,
    })
  })

  it('derives the public URL from PORT when GATEHOUSE_PUBLIC_URL is unset', () => {
    expect(loadConfig({ PORT: '8080' }).publicUrl).toBe('http://localhost:8080')
  })

  it('drops the trailing slash of a configured public URL', () => {
    expect(loadConfig({ GATEHOUSE_PUBLIC_URL: 'https://gate.example.com/' }).publicUrl).toBe('https://gate.example.com')
  })

  it('places the default database in the configured data directory', () => {
    const config = loadConfig({ GATEHOUSE_DATA_DIR: '/srv/gatehouse' })
    expect(config.databaseUrl).toBe('sqlite:/srv/gatehouse/gatehouse.db')
  })

  it('reads durations written in minutes, hours and days', () => {
    const config = loadConfig({
      GATEHOUSE_SESSION_TTL: '12h',
      GATEHOUSE_LOGIN_WINDOW: '90s',
      GATEHOUSE_SHUTDOWN_TIMEOUT: '2m',
    })
    expect(config).toMatchObject({ sessionTtlSeconds: 43200, loginWindowSeconds: 90, shutdownTimeoutSeconds: 120 })
  })

  it('reads encryption keys newest first', () => {
    const config = loadConfig({ GATEHOUSE_ENCRYPTION_KEYS: `new:${KEY_B}, old:${KEY_A}` })
    expect(config.encryptionKeys.map((key) => key.id)).toEqual(['new', 'old'])
    expect(config.encryptionKeys[0].key).toEqual(new Uint8Array(32).fill(2))
  })

  it('accepts Postgres and in-memory database URLs', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://gate@db:5432/gate' }).databaseUrl).toBe(
      'postgres://gate@db:5432/gate',
    )
    expect(loadConfig({ DATABASE_URL: ':memory:' }).databaseUrl).toBe(':memory:')
  })
})

describe('loadConfig problems', () => {
  it('rejects a PORT that is not a number', () => {
    const problems = problemsOf({ PORT: 'abc' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('PORT: ')
    expect(problems[0]).toContain('"abc"')
  })

  it('rejects a PORT outside 1 to 65535', () => {
    expect(problemsOf({ PORT: '70000' })).toEqual(['PORT: must be between 1 and 65535, got 70000'])
    expect(problemsOf({ PORT: '0' })).toEqual(['PORT: must be between 1 and 65535, got 0'])
  })

  it('rejects an ftp: public URL', () => {
    const problems = problemsOf({ GATEHOUSE_PUBLIC_URL: 'ftp://gate.example.com' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('GATEHOUSE_PUBLIC_URL: ')
    expect(problems[0]).toContain('http or https')
  })

  it('rejects a public URL that is not a URL', () => {
    const problems = problemsOf({ GATEHOUSE_PUBLIC_URL: 'gate.example.com' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('GATEHOUSE_PUBLIC_URL: must be an absolute http(s) URL')
  })

  it('rejects a public URL with a query', () => {
    expect(problemsOf({ GATEHOUSE_PUBLIC_URL: 'https://gate.example.com/?tenant=a' })).toEqual([
      'GATEHOUSE_PUBLIC_URL: must not have a query or fragment',
    ])
  })

  it('rejects a public URL with a fragment', () => {
    expect(problemsOf({ GATEHOUSE_PUBLIC_URL: 'https://gate.example.com/#top' })).toEqual([
      'GATEHOUSE_PUBLIC_URL: must not have a query or fragment',
    ])
  })

  it('rejects a public URL that ends in an empty query', () => {
    // `https://gate.example.com/?` would become the issuer and prefix every URL built from it
    expect(problemsOf({ GATEHOUSE_PUBLIC_URL: 'https://gate.example.com/?' })).toEqual([
      'GATEHOUSE_PUBLIC_URL: must not have a query or fragment',
    ])
  })

  it('rejects a public URL with credentials', () => {
    expect(problemsOf({ GATEHOUSE_PUBLIC_URL: 'https://user:pw@gate.example.com' })).toEqual([
      'GATEHOUSE_PUBLIC_URL: must not contain credentials',
    ])
  })

  it('rejects a DATABASE_URL of an unsupported database', () => {
    const problems = problemsOf({ DATABASE_URL: 'mysql://db/gate' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('DATABASE_URL: must be sqlite:<path>, :memory: or postgres://')
  })

  it('rejects an encryption key that is not 32 bytes long', () => {
    const problems = problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: `short:${btoa('sixteen bytes!!!')}` })
    expect(problems).toEqual(['GATEHOUSE_ENCRYPTION_KEYS: key "short" must decode to 32 bytes, got 16'])
  })

  it('rejects an encryption key without an ID', () => {
    const problems = problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: KEY_A })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('GATEHOUSE_ENCRYPTION_KEYS: each key must be written id:base64key')
  })

  it('rejects an encryption key with an empty ID', () => {
    const problems = problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: `:${KEY_A}` })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('GATEHOUSE_ENCRYPTION_KEYS: each key must be written id:base64key')
  })

  it('rejects two encryption keys with the same ID', () => {
    expect(problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: `k1:${KEY_A},k1:${KEY_B}` })).toEqual([
      'GATEHOUSE_ENCRYPTION_KEYS: key id "k1" appears twice',
    ])
  })

  it('rejects an encryption key that is not base64', () => {
    expect(problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: 'k1:not*base64' })).toEqual([
      'GATEHOUSE_ENCRYPTION_KEYS: key "k1" is not valid base64',
    ])
  })

  it('never echoes key material in a problem', () => {
    const [problem] = problemsOf({ GATEHOUSE_ENCRYPTION_KEYS: `k1:${KEY_A},k1:${KEY_B}` })
    expect(problem).not.toContain(KEY_A)
    expect(problem).not.toContain(KEY_B)
  })

  it('rejects an unknown log level, naming the allowed ones', () => {
    expect(problemsOf({ GATEHOUSE_LOG_LEVEL: 'loud' })).toEqual([
      'GATEHOUSE_LOG_LEVEL: must be one of debug, info, warn, error, got "loud"',
    ])
  })

  it('rejects a duration without a known unit', () => {
    const problems = problemsOf({ GATEHOUSE_SESSION_TTL: '7 weeks' })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith('GATEHOUSE_SESSION_TTL: must be a duration such as 90s, 15m, 12h or 7d')
  })

  it('rejects a zero duration', () => {
    expect(problemsOf({ GATEHOUSE_LOGIN_WINDOW: '0m' })).toEqual(['GATEHOUSE_LOGIN_WINDOW: must be longer than zero'])
  })

  it('rejects a metrics token a scraper could not send, without echoing it', () => {
    expect(problemsOf({ GATEHOUSE_METRICS_TOKEN: 'two words' })).toEqual([
      'GATEHOUSE_METRICS_TOKEN: must be visible ASCII characters without spaces',
    ])
  })

  it('rejects a boolean it cannot read', () => {
    expect(problemsOf({ GATEHOUSE_TRUST_PROXY: 'maybe' })).toEqual([
      'GATEHOUSE_TRUST_PROXY: must be true or false, got "maybe"',
    ])
  })

  it('reports every problem at once, one line per variable', () => {
    const problems = problemsOf({
      PORT: 'abc',
      DATABASE_URL: 'mysql://db/gate',
      GATEHOUSE_LOG_LEVEL: 'loud',
      GATEHOUSE_SESSION_TTL: 'forever',
    })
    expect(problems.map((problem) => problem.split(':')[0])).toEqual([
      'PORT',
      'DATABASE_URL',
      'GATEHOUSE_LOG_LEVEL',
      'GATEHOUSE_SESSION_TTL',
    ])
    expect(problems.every((problem) => !problem.includes('\n'))).toBe(true)
  })

  it('puts each problem on its own line of the error message', () => {
    try {
      loadConfig({ PORT: 'abc', GATEHOUSE_LOG_LEVEL: 'loud' })
      throw new Error('expected a ConfigError')
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message.split('\n')).toHaveLength(2)
    }
  })
})

describe('gatehouse serve with a bad configuration', () => {
  afterEach(() => {
    killChildren()
  })

  it('exits with status 2 and names each bad variable on its own line of stderr', async () => {
    const dataDir = createTempDir()
    try {
      const result = await runCli(
        ['serve'],
        cliEnv({ PORT: 'abc', GATEHOUSE_LOG_LEVEL: 'loud', GATEHOUSE_DATA_DIR: dataDir.path }),
      )
      expect(result.exitCode).toBe(2)
      const lines = result.stderr.trim().split('\n')
      expect(lines[0]).toBe('gatehouse: invalid configuration:')
      expect(lines.filter((line) => line.includes('PORT'))).toEqual([
        'gatehouse:   PORT: must be a whole number, got "abc"',
      ])
      expect(lines.filter((line) => line.includes('GATEHOUSE_LOG_LEVEL'))).toHaveLength(1)
      expect(lines).toHaveLength(3)
      expect(result.stdout).toBe('')
    } finally {
      dataDir.remove()
    }
  })
})

describe('loadConfig tracing (the standard OpenTelemetry variables)', () => {
  it('turns tracing off without an OTLP endpoint, whatever else is set', () => {
    expect(loadConfig({ OTEL_SERVICE_NAME: 'gw', OTEL_TRACES_SAMPLER: 'always_on' }).tracing).toBeUndefined()
  })

  it('sends spans to <endpoint>/v1/traces with the defaults', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({
      url: 'http://collector:4318/v1/traces',
      headers: {},
      serviceName: 'gatehouse',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
    })
  })

  it('prefers the traces endpoint as written and reads headers, service name and sampler', () => {
    const tracing = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otel.example.com/api/traces',
      OTEL_EXPORTER_OTLP_HEADERS: 'X-Api-Key=a%20b,team=gw',
      OTEL_SERVICE_NAME: 'gatehouse-eu',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
    }).tracing
    expect(tracing).toEqual({
      url: 'https://otel.example.com/api/traces',
      headers: { 'x-api-key': 'a b', team: 'gw' },
      serviceName: 'gatehouse-eu',
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
    })
  })

  it('names the problem once for an unknown sampler, a bad ratio, grpc or malformed headers', () => {
    const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
    expect(problemsOf({ ...base, OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toEqual([
      expect.stringContaining('OTEL_TRACES_SAMPLER must be one of'),
    ])
    expect(problemsOf({ ...base, OTEL_TRACES_SAMPLER_ARG: '2' })[0]).toContain('from 0 to 1')
    expect(problemsOf({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })[0]).toContain('grpc is not supported')
    expect(problemsOf({ ...base, OTEL_EXPORTER_OTLP_HEADERS: 'novalue' })[0]).toContain('key=value')
    expect(problemsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })[0]).toStartWith('OTEL_EXPORTER_OTLP_ENDPOINT:')
  })
})
