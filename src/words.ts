// How a count and a list read in a sentence, for every message qemu-harden prints: "1 file", "2 files",
// "WEAKER and DRIFT". A leaf: it imports nothing.

/** A count with its noun, singular for exactly one: `plural(1, 'file')` is "1 file", `plural(0, 'file')` "0 files". */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : nouns}`;
}

/** Items as a sentence lists them: "a", "a and b", "a, b and c" (or "a, b or c"). */
export function listed(items: readonly string[], conj: 'and' | 'or' = 'and'): string {
  return items.length < 2 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} ${conj} ${items.at(-1)!}`;
}
