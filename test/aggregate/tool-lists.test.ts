import { describe, expect, it } from 'bun:test'
import { isAcceptableUpstreamName, MAX_TOOL_NAME_LENGTH, passesLists } from '../../src/aggregate/names.ts'

/**
 * Allow and deny entries (DESIGN.md: "arrays of tool names; `*` globs"): an entry matches the whole
 * upstream name, `*` stands for any run of characters, every other character is itself. Upstream
 * names are chosen by the upstream, so matching must not take time that grows faster than the
 * name: the long-name cases below ran for minutes with a backtracking matcher, and the test
 * timeout catches that without timing anything here.
 */

const allowed = (pattern: string, name: string) => passesLists(name, [pattern], [])
const denied = (pattern: string, name: string) => !passesLists(name, [], [pattern])

/**
 * A reference matcher written for this test: tries every split of the name at each `*`. Slow, but
 * plainly right for the short strings it is given.
 */
function reference(pattern: string, name: string): boolean {
  if (pattern === '') return name === ''
  if (pattern[0] === '*') {
    for (let i = 0; i <= name.length; i++) if (reference(pattern.slice(1), name.slice(i))) return true
    return false
  }
  return name !== '' && pattern[0] === name[0] && reference(pattern.slice(1), name.slice(1))
}

/** Every string over `alphabet` of length 0 to `max`. */
function allStrings(alphabet: string[], max: number): string[] {
  const out = ['']
  let previous = ['']
  for (let length = 1; length <= max; length++) {
    previous = previous.flatMap((prefix) => alphabet.map((c) => prefix + c))
    out.push(...previous)
  }
  return out
}

describe('allow and deny entries', () => {
  const cases: [string, string, boolean][] = [
    ['read_file', 'read_file', true],
    ['read_file', 'read_file2', false],
    ['read_file', 'xread_file', false],
    ['read_*', 'read_', true],
    ['read_*', 'read_file', true],
    ['read_*', 'write_file', false],
    ['*_file', 'read_file', true],
    ['*_file', 'read_file_x', false],
    ['*write*file*', 'overwrite_a_file_now', true],
    ['*write*file*', 'writefile', true],
    ['*write*file*', 'file_write', false],
    ['*', '', true],
    ['*', 'anything at all', true],
    ['**', 'x', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['*ab', 'aab', true],
    ['*ab', 'aba', false],
    ['delete_*', 'delete_\nall', true],
    ['*.txt', 'notes.txt', true],
    ['*.txt', 'notes_txt', false],
    ['a?c', 'abc', false],
    ['a?c', 'a?c', true],
    ['a+', 'aa', false],
    ['a+*', 'a+b', true],
    ['[ab]*', 'a', false],
    ['[ab]*', '[ab]x', true],
    ['(x|y)*', 'x', false],
    ['^x$*', '^x$', true],
    ['a\\*', 'a\\b', true],
    ['a\\*', 'ab', false],
    ['{1}*', '{1}z', true],
  ]
  for (const [pattern, name, expected] of cases)
    it(`${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)} with ${JSON.stringify(pattern)}`, () => {
      expect(allowed(pattern, name)).toBe(expected)
      expect(denied(pattern, name)).toBe(expected)
    })

  it('agrees with a plain reference matcher on every short pattern and name', () => {
    const disagreements: string[] = []
    for (const pattern of allStrings(['a', 'b', '*'], 5))
      for (const name of allStrings(['a', 'b'], 6))
        if (allowed(pattern, name) !== reference(pattern, name))
          disagreements.push(`${JSON.stringify(pattern)} ~ ${JSON.stringify(name)}`)
    expect(disagreements).toEqual([])
  })

  it('lets only allowed tools through, then removes denied ones', () => {
    expect(passesLists('read_file', ['read_*'], ['*_secret'])).toBe(true)
    expect(passesLists('read_secret', ['read_*'], ['*_secret'])).toBe(false)
    expect(passesLists('write_file', ['read_*'], [])).toBe(false)
    expect(passesLists('write_file', [], [])).toBe(true)
  })

  it('matches *a*a*a*b against a 100,000-character name without backtracking', () => {
    const name = 'a'.repeat(100_000)
    expect(denied('*a*a*a*b', name)).toBe(false)
    expect(denied('*a*a*a*b', `${name}b`)).toBe(true)
  })

  it('matches *write*file* against a 300,000-character name without backtracking', () => {
    const name = 'write'.repeat(60_000)
    expect(name.length).toBe(300_000)
    expect(denied('*write*file*', name)).toBe(false)
    expect(denied('*write*file*', `${name}file`)).toBe(true)
    expect(denied('*write*file*', `file${name}`)).toBe(false)
  })

  it('matches many stars against a long name that almost matches', () => {
    const pattern = `${'*a'.repeat(20)}*b`
    const name = 'a'.repeat(50_000)
    expect(denied(pattern, name)).toBe(false)
    expect(denied(pattern, `${name}b`)).toBe(true)
  })
})

describe('upstream names Gatehouse keeps', () => {
  it('keeps a name of 1 to 256 characters', () => {
    expect(MAX_TOOL_NAME_LENGTH).toBe(256)
    expect(isAcceptableUpstreamName('x')).toBe(true)
    expect(isAcceptableUpstreamName('x'.repeat(256))).toBe(true)
  })

  it('drops an empty name, a longer one, and anything that is not a string', () => {
    expect(isAcceptableUpstreamName('')).toBe(false)
    expect(isAcceptableUpstreamName('x'.repeat(257))).toBe(false)
    for (const value of [undefined, null, 42, ['x'], { name: 'x' }]) expect(isAcceptableUpstreamName(value)).toBe(false)
  })
})
