/**
 * Password hashing with argon2id, as PHC strings (`$argon2id$v=19$m=65536,t=2,p=1$…`), so a hash
 * written on one runtime verifies on the other. Bun's native hasher on Bun; hash-wasm elsewhere.
 */
const MEMORY_KIB = 65536
const ITERATIONS = 2

export async function hashPassword(password: string): Promise<string> {
  if (typeof Bun !== 'undefined')
    return Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: MEMORY_KIB, timeCost: ITERATIONS })
  const { argon2id } = await import('hash-wasm')
  const salt = new Uint8Array(16)
  crypto.getRandomValues(salt)
  return argon2id({
    password,
    salt,
    parallelism: 1,
    iterations: ITERATIONS,
    memorySize: MEMORY_KIB,
    hashLength: 32,
    outputType: 'encoded',
  })
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (typeof Bun !== 'undefined') return Bun.password.verify(password, hash)
  const { argon2Verify } = await import('hash-wasm')
  return argon2Verify({ password, hash })
}

let dummyHash: Promise<string> | undefined

/**
 * Verifies against a throwaway hash, so a login for an unknown user costs as much time as
 * one for a real user and response times do not reveal which accounts exist.
 */
export async function verifyDummyPassword(password: string): Promise<void> {
  dummyHash ??= hashPassword(crypto.randomUUID())
  await verifyPassword(password, await dummyHash)
}
