/**
 * Builds the typed client package in `client/` (`@gatehouse-mcp/client`) for a frontend to depend
 * on by path:
 *
 *   bun run build:client
 *
 * - `client/dist/index.js`: the runtime, `client/index.ts` as one ES module that imports only
 *   `@elysia/eden` (the server's types are erased, nothing of `src/` is bundled);
 * - `client/dist/types/`: declarations emitted by `tsc` from `client/index.ts` and the server
 *   sources its `App` type reaches (client/tsconfig.build.json).
 *
 * Declarations rather than the `.ts` sources, because a consumer's compiler checks `.ts` files
 * in a dependency with its own options (`noUncheckedIndexedAccess`, `exactOptionalPropertyTypes`,
 * no `allowImportingTsExtensions`, no Bun types), so the server's sources would fail to compile
 * in projects whose settings differ from ours, and would need every server dependency installed.
 * `.d.ts` files are read, not checked (`skipLibCheck`), and need only `elysia` beside them.
 *
 * The output is generated, ignored by git, and left out of the repository's own type check and
 * formatting. Rebuild after updating the checkout, so the types match the server you run.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const CLIENT = join(ROOT, 'client')
export const CLIENT_DIST = join(CLIENT, 'dist')

async function run(command: string[]): Promise<void> {
  const child = Bun.spawn(command, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ])
  if (code !== 0) throw new Error(`${command.join(' ')} exited with ${code}\n${stdout}${stderr}`)
}

export async function buildClient(): Promise<{ outdir: string }> {
  await rm(CLIENT_DIST, { recursive: true, force: true })
  const built = await Bun.build({
    entrypoints: [join(CLIENT, 'index.ts')],
    outdir: CLIENT_DIST,
    target: 'browser',
    format: 'esm',
    packages: 'external',
  })
  if (!built.success) throw new Error(`bundling client/index.ts failed:\n${built.logs.join('\n')}`)
  await run([join(ROOT, 'node_modules', '.bin', 'tsc'), '-p', join(CLIENT, 'tsconfig.build.json')])
  return { outdir: CLIENT_DIST }
}

if (import.meta.main) {
  try {
    const started = performance.now()
    await buildClient()
    process.stdout.write(`built client/dist in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
  } catch (error) {
    process.stderr.write(`build:client failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
}
