#!/usr/bin/env node
// Runs a Gatehouse command on a machine that may only have Node and npm: installs Bun through
// npm when it is missing, installs dependencies, then hands over to Bun.
//   node scripts/bootstrap.mjs serve   -> bun src/cli.ts serve
//   node scripts/bootstrap.mjs test    -> bun test
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const localPrefix = join(homedir(), '.cache', 'gatehouse', 'bun')

function works(command) {
  const result = spawnSync(command, ['--version'], { stdio: 'ignore' })
  return result.status === 0
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options })
  if (result.error) throw result.error
  return result.status ?? 1
}

function findBun() {
  if (process.env.BUN && works(process.env.BUN)) return process.env.BUN
  if (works('bun')) return 'bun'
  const local = join(localPrefix, 'node_modules', '.bin', 'bun')
  if (existsSync(local) && works(local)) return local
  console.error('gatehouse: Bun not found; installing it with npm')
  if (run('npm', ['install', '--global', 'bun']) === 0 && works('bun')) return 'bun'
  // No permission for a global install: keep a private copy instead.
  if (run('npm', ['install', '--prefix', localPrefix, 'bun']) === 0 && works(local)) return local
  console.error('gatehouse: could not install Bun with npm; see https://bun.sh for other ways')
  process.exit(1)
}

const bun = findBun()
// Idempotent and quick when node_modules is already in step with bun.lock.
const installed = run(bun, ['install', '--frozen-lockfile', '--silent'])
if (installed !== 0) process.exit(installed)

/**
 * The browser tests drive Debian's Chromium (a test tool's own browser download is not used).
 * As root on Debian it is installed here; anywhere else the reason and the command are printed
 * and those tests fail saying the same.
 */
const CHROMIUM = '/usr/bin/chromium'

function ensureChromium() {
  if (existsSync(CHROMIUM)) return
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && works('apt-get')) {
    console.error("gatehouse: Chromium is missing; installing Debian's chromium for the browser tests")
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    if (run('apt-get', ['update', '-qq'], { env }) === 0)
      run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { env })
    if (existsSync(CHROMIUM)) return
  }
  console.error(
    `gatehouse: the browser tests need Chromium at ${CHROMIUM}; install it with \`sudo apt-get install -y chromium\` (Debian/Ubuntu)`,
  )
}

const [command = 'serve', ...args] = process.argv.slice(2)
if (command === 'test') ensureChromium()
const argv = command === 'test' ? ['test', ...args] : ['src/cli.ts', command, ...args]
// Bun reads its outbound connection limit once, at start: room for the stream budget
// (GATEHOUSE_UPSTREAM_MAX_STREAMS) and, beside it, for every short request.
const env = command === 'serve' ? { BUN_CONFIG_MAX_HTTP_REQUESTS: '1024', ...process.env } : process.env
process.exit(run(bun, argv, { env }))
