import { describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { VARIABLES } from '../../src/config.ts'

describe('README configuration table', () => {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')

  it('lists every environment variable the server reads, with its default', () => {
    for (const variable of VARIABLES) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${variable.name}\` |`))
      expect(row, `${variable.name} has no row in the README`).toBeDefined()
      if (variable.default !== undefined) expect(row).toContain(`\`${variable.default}\``)
    }
  })
})
