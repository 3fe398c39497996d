// Laying out text for a terminal of a given width: long lines wrap at spaces (never cut), continued lines indented.

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
