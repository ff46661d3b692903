// Longest-prefix routing over the destination's wire bytes: a trie keyed by byte, walked once per
// prepare without building a string. A prefix P matches a destination D when D equals P or D
// starts with P followed by '.'; the empty prefix is a default route.

const DOT = 0x2e

class TrieNode {
  children: Map<number, TrieNode> | null = null
  target = -1
}

export class RoutingTable {
  private readonly root = new TrieNode()
  private readonly entries = new Map<string, number>()

  /** Sets the next hop (an account index) for a prefix, replacing any earlier one. */
  set(prefix: string, target: number): void {
    let node = this.root
    for (let i = 0; i < prefix.length; i++) {
      const c = prefix.charCodeAt(i)
      if (node.children === null) node.children = new Map()
      let next = node.children.get(c)
      if (next === undefined) {
        next = new TrieNode()
        node.children.set(c, next)
      }
      node = next
    }
    node.target = target
    this.entries.set(prefix, target)
  }

  /** Account index of the longest matching prefix, or -1 when no route matches. */
  lookup(buf: Uint8Array, offset: number, length: number): number {
    let node: TrieNode | undefined = this.root
    let best = node.target
    for (let i = 0; i < length; i++) {
      if (node.children === null) return best
      node = node.children.get(buf[offset + i])
      if (node === undefined) return best
      if (node.target >= 0 && (i + 1 === length || buf[offset + i + 1] === DOT)) best = node.target
    }
    return best
  }

  lookupAddress(address: string): number {
    const bytes = Buffer.from(address, 'latin1')
    return this.lookup(bytes, 0, bytes.length)
  }

  /** The table as prefix → account index, for logs and control-plane snapshots. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.entries)
  }
}
