// Holds in flight per account, in shared memory: each shard copies the holds a turn changed into
// its own block (shard/books.ts), and the main thread sums the blocks for the admin API. A reader
// sees each cell whole (Atomics), possibly one turn old.
//
//   per shard, one SAB: BigInt64 held[accounts]   amount held, base units of the account
//                       Int32    prepares[accounts] prepares from the account in flight

export function holdsBytes(accounts: number): number {
  return 8 * accounts + 4 * accounts
}

export function heldCells(sab: SharedArrayBuffer, accounts: number): BigInt64Array {
  return new BigInt64Array(sab, 0, accounts)
}

export function prepareCells(sab: SharedArrayBuffer, accounts: number): Int32Array {
  return new Int32Array(sab, 8 * accounts, accounts)
}

/** Per account, over every shard's block: the amount held and the prepares in flight. */
export function readHolds(blocks: SharedArrayBuffer[], accounts: number): { held: bigint[]; prepares: number[] } {
  const held = new Array<bigint>(accounts).fill(0n)
  const prepares = new Array<number>(accounts).fill(0)
  for (const sab of blocks) {
    const h = heldCells(sab, accounts)
    const p = prepareCells(sab, accounts)
    for (let i = 0; i < accounts; i++) {
      held[i] += Atomics.load(h, i)
      prepares[i] += Atomics.load(p, i)
    }
  }
  return { held, prepares }
}

/** One account's holds over every shard's block: what a change of that account reads, not the whole table. */
export function readHoldsOf(blocks: SharedArrayBuffer[], accounts: number, account: number): { held: bigint; prepares: number } {
  let held = 0n
  let prepares = 0
  for (const sab of blocks) {
    held += Atomics.load(heldCells(sab, accounts), account)
    prepares += Atomics.load(prepareCells(sab, accounts), account)
  }
  return { held, prepares }
}
