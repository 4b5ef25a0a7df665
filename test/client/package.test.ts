import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildClient } from '../../scripts/build-client.ts'
import { createTempDir, ROOT } from '../fixtures/cli-process.ts'
import { startTestServer } from '../setup.ts'

/**
 * The typed client as a frontend gets it, following the README's "Typed client" steps: build
 * `client/dist` in this checkout, depend on `client/` by path from an empty project, install
 * with Bun, compile with the README's tsconfig.json, run the README's example.
 */

const README = readFileSync(join(ROOT, 'README.md'), 'utf8')
const SECTION = README.slice(
  README.indexOf('## Typed client'),
  README.indexOf('\n## ', README.indexOf('## Typed client') + 1),
)

/** The first fenced block of the section in `language` whose text contains `marker`. */
function documentedBlock(language: string, marker: string): string {
  for (const [, text] of SECTION.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g')))
    if (text!.includes(marker)) return text!.replace(/^ {3}/gm, '')
  throw new Error(`the README's Typed client section has no ${language} block with ${marker}`)
}

const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'client', 'package.json'), 'utf8'))
const EXAMPLE = documentedBlock('ts', 'createClient')

/** A correct call beside two mistakes the compiler must catch. */
const MISTAKES = `import { createClient } from '@gatehouse-mcp/client'

const gatehouse = createClient('http://localhost:3000', { token: 'gth_ses_example' })
await gatehouse.api.v1.mcp.servers.post({ display_name: 'Echo', slug: 'echo', url: 'http://127.0.0.1:4210/mcp', auth_typ: 'none' })
const { data } = await gatehouse.api.v1.mcp.servers.get()
console.log(data?.[0]?.api_key_value)
`

let project: ReturnType<typeof createTempDir>

async function run(command: string[], cwd: string, env: Record<string, string> = {}) {
  const child = Bun.spawn(command, { cwd, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ])
  return { code, output: stdout + stderr }
}

beforeAll(async () => {
  await buildClient()
  project = createTempDir()
  const dependencies = JSON.parse(documentedBlock('json', PACKAGE.name)).dependencies
  expect(Object.keys(dependencies)).toEqual([PACKAGE.name])
  // The README's relative path, pointed at this checkout.
  dependencies[PACKAGE.name] = `file:${join(ROOT, 'client')}`
  writeFileSync(
    join(project.path, 'package.json'),
    JSON.stringify({ name: 'frontend', private: true, type: 'module', dependencies }),
  )
  writeFileSync(join(project.path, 'tsconfig.json'), documentedBlock('json', 'compilerOptions'))
  writeFileSync(join(project.path, 'example.ts'), EXAMPLE)
  writeFileSync(join(project.path, 'mistakes.ts'), MISTAKES)
  // Bun's cache already holds what the checkout installed; the registry is asked only for the rest.
  const installed = await run([process.execPath, 'install', '--prefer-offline'], project.path)
  if (installed.code !== 0) throw new Error(`bun install of the client package failed:\n${installed.output}`)
}, 120_000)

afterAll(() => {
  project?.remove()
})

describe('the client package', () => {
  it('asks for the elysia and Eden versions the server is built with', () => {
    const server = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    expect(PACKAGE.peerDependencies.elysia).toBe(server.dependencies.elysia)
    expect(PACKAGE.dependencies['@elysia/eden']).toBe(server.dependencies['@elysia/eden'])
  })

  it("compiles the README's example and reports a wrong field name and a field responses do not have", async () => {
    const { code, output } = await run([join(ROOT, 'node_modules', '.bin', 'tsc'), '-p', '.'], project.path)
    const errors = output.split('\n').filter((line) => line.includes('error TS'))
    expect(errors.filter((line) => !line.startsWith('mistakes.ts'))).toEqual([])
    expect(errors).toHaveLength(2)
    expect(errors[0]).toMatch(/^mistakes\.ts\(4,\d+\): error TS2561: .*'auth_typ' does not exist/)
    expect(errors[1]).toMatch(/^mistakes\.ts\(6,\d+\): error TS2339: Property 'api_key_value' does not exist/)
    expect(code).not.toBe(0)
  }, 60_000)

  it("runs the README's example against a real server", async () => {
    const server = await startTestServer()
    try {
      const post = (path: string, body: unknown, token?: string) =>
        fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
        })
      expect(
        (await post('/api/v1/users/first', { email: 'you@example.com', username: 'you', password: 'a long password' }))
          .status,
      ).toBe(201)
      const login = await (await post('/api/v1/auth/login', { login: 'you', password: 'a long password' })).json()
      const created = await post(
        '/api/v1/mcp/servers',
        { display_name: 'Echo', slug: 'echo', url: 'https://echo.example.com/mcp' },
        login.session_token,
      )
      expect(created.status).toBe(201)

      writeFileSync(join(project.path, 'run.ts'), EXAMPLE.replaceAll('https://gatehouse.example.com', server.url))
      const { code, output } = await run([process.execPath, 'run.ts'], project.path)
      expect(output.trim()).toBe('echo false not_required')
      expect(code).toBe(0)
    } finally {
      await server.close()
    }
  }, 30_000)
})
