import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { openDatabase } from './db/index.ts'
import { migrateToLatest } from './db/migrate.ts'
import { ApiError } from './http/errors.ts'
import { createLogger } from './ops/logger.ts'
import { generateSecret } from './auth/token.ts'
import { SecretKeyError } from './secrets/keyring.ts'
import { rotateSealedColumns } from './secrets/sealed-column.ts'
import { loadKeyring, prepare, startGatehouse } from './server.ts'
import { countUsers } from './users/user.repository.ts'
import { createUser } from './users/user.service.ts'

const USAGE = `Usage: gatehouse <command> [options]

Commands:
  serve                 Start the server (applies pending migrations first)
  migrate               Apply pending database migrations and exit
  create-admin          Create the owner (or, once users exist, another admin)
      --email <email> --username <name> [--password <password>] [--display-name <name>]
      Without --password, GATEHOUSE_ADMIN_PASSWORD is used, or a password is generated and printed.
  rotate-key            Re-encrypt every stored secret with the first key of GATEHOUSE_ENCRYPTION_KEYS
  help                  Show this help

Configuration comes from environment variables; see the README.`

function fail(lines: string[], code = 1): never {
  for (const line of lines) process.stderr.write(`gatehouse: ${line}\n`)
  process.exit(code)
}

function readConfig(): Config {
  try {
    return loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) fail(['invalid configuration:', ...error.problems.map((p) => `  ${p}`)], 2)
    throw error
  }
}

async function serveCommand(config: Config) {
  const logger = createLogger(config.logLevel)
  const gatehouse = await startGatehouse(config, logger)
  const stop = async (signal: string) => {
    logger.info('shutting down: finishing in-flight requests', { signal })
    await gatehouse.shutdown()
    logger.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

async function migrateCommand(config: Config) {
  const { db, dialect } = await openDatabase(config.databaseUrl)
  try {
    const applied = await migrateToLatest(db, dialect)
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
  } finally {
    await db.destroy()
  }
}

async function createAdminCommand(config: Config, args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      email: { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      'display-name': { type: 'string' },
    },
  })
  if (!values.email || !values.username) fail(['create-admin needs --email and --username'], 2)
  const generated = !values.password && !process.env.GATEHOUSE_ADMIN_PASSWORD
  const password = values.password ?? process.env.GATEHOUSE_ADMIN_PASSWORD ?? generateSecret()
  if (password.length < 8) fail(['the password must be at least 8 characters'], 2)
  const deps = await prepare(config, createLogger('warn'))
  try {
    const first = (await countUsers(deps.db)) === 0
    const user = await createUser(
      deps.db,
      {
        email: values.email,
        username: values.username,
        password,
        display_name: values['display-name'],
        role: first ? 'owner' : 'admin',
      },
      { firstUser: first },
    )
    process.stdout.write(`created ${user.role} ${user.username} <${user.email}>\n`)
    if (generated) process.stdout.write(`password: ${password}\n`)
  } finally {
    await deps.events.close()
    await deps.db.destroy()
  }
}

async function rotateKeyCommand(config: Config) {
  const logger = createLogger('warn')
  const { db, dialect } = await openDatabase(config.databaseUrl)
  try {
    await migrateToLatest(db, dialect)
    const keyring = await loadKeyring(config, logger)
    const { rotated, skipped } = await rotateSealedColumns(db, keyring)
    process.stdout.write(
      `re-encrypted ${rotated} secret(s) with key "${keyring.activeKeyId}"${skipped ? `; ${skipped} changed meanwhile and were left as written` : ''}\n`,
    )
  } finally {
    await db.destroy()
  }
}

export async function main(argv: string[]) {
  const [command, ...args] = argv
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const commands: Record<string, (config: Config, args: string[]) => Promise<void>> = {
    serve: serveCommand,
    migrate: migrateCommand,
    'create-admin': createAdminCommand,
    'rotate-key': rotateKeyCommand,
  }
  const run = commands[command]
  if (!run) fail([`unknown command "${command}"`, USAGE], 2)
  try {
    await run(readConfig(), args)
  } catch (error) {
    if (error instanceof ConfigError) fail(['invalid configuration:', ...error.problems.map((p) => `  ${p}`)], 2)
    if (error instanceof SecretKeyError || error instanceof ApiError) fail([error.message])
    if (error instanceof Error && /^migration /.test(error.message)) fail([error.message])
    throw error
  }
}

await main(process.argv.slice(2))
