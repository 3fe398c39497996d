// Laying out text for a terminal of a given width: long lines wrap at spaces (never cut), continued lines indented;
// commands are laid out so that what is shown can be pasted into a shell.
import { shellWord } from '../../escape.js';

export function wrap(line: string, width: number, indent = '    '): string[] {
  const w = Math.max(20, width);
  const out: string[] = [];
  let rest = line;
  let first = true;
  while ((first ? 0 : indent.length) + rest.length > w) {
    const room = w - (first ? 0 : indent.length);
    let cut = rest.lastIndexOf(' ', room);
    if (cut <= room / 3) cut = room;
    out.push((first ? '' : indent) + rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
    first = false;
  }
  out.push((first ? '' : indent) + rest);
  return out;
}

export const color = (c: string) => (process.env.NO_COLOR ? undefined : c);

/**
 * The words of a command line as a POSIX shell splits them, quotes removed: how qemu-harden was started
 * (src/invocation.ts) arrives as one line, plain words and single-quoted ones.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word = (word ?? '') + line.slice(i + 1, end < 0 ? line.length : end);
      i = end < 0 ? line.length : end;
    } else if (c === '\\' && i + 1 < line.length) word = (word ?? '') + line[++i];
    else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * A command laid out for a terminal `width` columns wide so that it can be copied and pasted whole: never
 * broken by a bare newline. Too long for one line, it goes on after ` \` on the next (indented); a word too long
 * for any line is cut with `\` right before the newline and goes on at the start of the next, where nothing
 * separates its parts, and each part is quoted on its own (a shell joins adjacent quoted parts into one word).
 */
export function commandLines(argv: string[], width: number, indent = '  '): string[] {
  const w = Math.max(20, width);
  const more = `${indent}  `;
  const lines: string[] = [];
  let line = indent;
  let fresh = true;
  argv.forEach((arg, k) => {
    const last = k === argv.length - 1;
    const word = shellWord(arg);
    const room = (l: string) => w - l.length - (fresh ? 0 : 1) - (last ? 0 : 2);
    if (word.length > room(line) && !fresh) {
      lines.push(`${line} \\`);
      line = more;
      fresh = true;
    }
    if (word.length <= room(line)) {
      line += (fresh ? '' : ' ') + word;
      fresh = false;
      return;
    }
    // Too long for a line of its own: cut it, each part as long as fits with the "\" that ends its line (and
    // the last with the " \" that follows it when more words come).
    let rest = [...arg];
    for (;;) {
      const budget = (n: number) => w - line.length - (n < rest.length ? 1 : last ? 0 : 2);
      let n = Math.min(rest.length, Math.max(1, w - line.length));
      while (n > 1 && shellWord(rest.slice(0, n).join('')).length > budget(n)) n--;
      const part = shellWord(rest.slice(0, n).join(''));
      rest = rest.slice(n);
      if (rest.length === 0) {
        line += part;
        break;
      }
      lines.push(`${line}${part}\\`);
      line = '';
    }
    fresh = false;
  });
  lines.push(line);
  return lines;
}
