// Quoting for every language the bundle is written in. Each value that reaches an emitted file passes through
// exactly one of these; nothing is escaped inline elsewhere. Control characters never get this far: the model
// rejects them, and these functions refuse them again rather than emit something a parser reads differently.

function refuseControl(value: string, where: string): void {
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new Error(`${where}: control character in ${JSON.stringify(value)}`);
}

/** A value inside a QEMU option string (`key=VALUE,...`): QEMU reads ",," as a literal comma. */
export function qemuValue(value: string): string {
  refuseControl(value, 'QEMU option');
  return value.replaceAll(',', ',,');
}

/** Build `key=value,key=value` with every value escaped. */
export function qemuOpts(first: string | undefined, opts: [string, string | number | boolean][]): string {
  const parts = first === undefined ? [] : [first];
  for (const [k, v] of opts) {
    const s = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
    parts.push(`${k}=${qemuValue(s)}`);
  }
  return parts.join(',');
}

/**
 * A QEMU option in its JSON form (-blockdev, -object), for what the key=value form cannot say, such as
 * `"backing": null`. JSON.stringify escapes every string; control characters are refused first.
 */
export function qemuJson(value: Record<string, unknown>): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string') refuseControl(v, 'QEMU JSON option');
    return v;
  });
}

function systemdQuote(escaped: string): string {
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * One argument of ExecStart=: specifiers (%) and variable expansion ($) are doubled, and the word is
 * double-quoted with C escapes when it holds anything that would split or unquote it.
 */
export function systemdExecWord(value: string): string {
  refuseControl(value, 'systemd unit');
  return systemdQuote(value.replaceAll('%', '%%').replaceAll('$', () => '$$'));
}

/**
 * One path of a path-list setting (ReadWritePaths=, InaccessiblePaths=, DeviceAllow=, ...): specifiers are
 * expanded there but variables are not, so only % is doubled before quoting.
 */
export function systemdPathWord(value: string): string {
  return specifierWord(value, 'systemd unit');
}

/** A word where systemd expands specifiers but not variables, in a file of the kind named (for the refusal). */
function specifierWord(value: string, file: string): string {
  refuseControl(value, file);
  return systemdQuote(value.replaceAll('%', '%%'));
}

/**
 * The path of a BindPaths=/BindReadOnlyPaths= entry. That parser splits on ':' as well as spaces and, inside
 * quotes, accepts a backslash only before a separator or another backslash, so `\"` is not available: the path
 * is written in single-quoted runs, a single quote itself in double quotes, and specifiers doubled.
 */
export function systemdBindWord(value: string): string {
  refuseControl(value, 'systemd unit');
  const escaped = value.replaceAll('%', '%%');
  if (/^[A-Za-z0-9_@%+=,./-]+$/.test(escaped)) return escaped;
  return escaped
    .split(/('+)/)
    .filter((run) => run !== '')
    .map((run) => (run.startsWith("'") ? `"${run}"` : `'${run.replaceAll('\\', '\\\\')}'`))
    .join('');
}

/** A free-text unit value that is not split into words (Description=): only specifiers are special. */
export function systemdText(value: string): string {
  refuseControl(value, 'systemd unit');
  return value.replaceAll('%', '%%');
}

/**
 * A literal path in an AppArmor rule: every character AppArmor reads as a glob or variable is escaped with a
 * backslash, and the path is quoted so spaces stay inside it. `glob` is appended unescaped, for the few rules
 * that mean a whole directory ("/**").
 */
export function apparmorPath(path: string, glob = ''): string {
  refuseControl(path, 'AppArmor');
  const escaped = path.replace(/[\\"*?[\]{}^@]/g, (c) => `\\${c}`);
  return `"${escaped}${glob}"`;
}

/**
 * A literal path as an SELinux file context's regular expression, inside a CIL string (`(filecon "…" …)`): letters,
 * digits, "/", "_" and "-" stand for themselves, every other ASCII character is written \xHH, which the regular
 * expression reads as that character. So nothing is a pattern, and no space or quote ends the file_contexts field
 * or the CIL string (CIL strings have no escapes of their own). `tail` is appended as a pattern ("(/.*)?").
 */
export function fileContextPath(path: string, tail = ''): string {
  refuseControl(path, 'SELinux file context');
  const escaped = path.replace(/[^A-Za-z0-9/_-]/g, (c) =>
    c.charCodeAt(0) < 0x80 ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c,
  );
  return `"${escaped}${tail}"`;
}

/**
 * A field of a sysusers.d or tmpfiles.d line. Those files split words and expand specifiers the way a unit's
 * path list does, so the quoting is systemdPathWord's.
 */
export function tmpfilesField(value: string): string {
  return specifierWord(value, 'tmpfiles/sysusers');
}

/**
 * A path on a tmpfiles.d line whose type expands globs (z, Z, ...): glob characters are backslash-escaped for
 * glob(3), then the word is quoted with C escapes, so `a*.img` means exactly that one file.
 */
export function tmpfilesPath(path: string): string {
  refuseControl(path, 'tmpfiles');
  const globEscaped = path.replace(/[\\*?[\]{}]/g, (c) => `\\${c}`).replaceAll('%', '%%');
  return `"${globEscaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * A value in a udev rule (`KEY=="value"`). udev has no escape for a double quote inside a plain string, so a
 * value that needs one is refused; the model only lets names, numbers and hex ids get here.
 */
export function udevValue(value: string): string {
  refuseControl(value, 'udev');
  if (/["\\*?[\]|]/.test(value))
    throw new Error(`udev: ${JSON.stringify(value)} holds a character udev would read as a pattern or quote`);
  return `"${value}"`;
}

/**
 * One path as a unit name, as `systemd-escape --path` writes it: "/" becomes "-", and every byte that is not a
 * letter, digit, ":", "_" or a non-leading "." becomes "\xNN" ("-" itself included).
 */
export function systemdUnitPath(path: string): string {
  refuseControl(path, 'systemd unit name');
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  return [...Buffer.from(trimmed, 'utf8')]
    .map((b, i) => {
      const c = String.fromCharCode(b);
      if (c === '/') return '-';
      if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) return c;
      return `\\x${b.toString(16).padStart(2, '0')}`;
    })
    .join('');
}

/**
 * Text a person typed, placed inside a Markdown paragraph, list item or table cell (never at the start of a
 * line, so list and heading markers cannot start there): every character CommonMark or GitHub could read as
 * inline markup (HTML and comments, code spans, emphasis, strikethrough, links, table pipes) is escaped, so the
 * text renders as exactly those characters and cannot hide or forge what follows it.
 */
export function markdownText(value: string): string {
  refuseControl(value, 'Markdown');
  return value.replace(/[\\`*_[\]<>#|~&]/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : `\\${c}`,
  );
}

/**
 * A name or path shown as code in Markdown: a code span whose fence is longer than any run of backticks in it,
 * so nothing inside ends it early. Backslashes are literal in a code span, so it has no escape for a table's
 * "|": in a table cell use it only for values that cannot hold one (the bundle's own file names).
 */
export function markdownCode(value: string): string {
  refuseControl(value, 'Markdown');
  const longest = Math.max(0, ...[...value.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = value.startsWith('`') || value.endsWith('`') || /^ .* $/.test(value) ? ' ' : '';
  return `${fence}${pad}${value}${pad}${fence}`;
}

const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\\]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/**
 * Text from outside qemu-harden (a process's command line, a name or path in an imported file, anything read
 * from a host or a bundle) as it may be printed on the operator's terminal: control characters (C0, DEL, C1)
 * and the Unicode characters that reorder or hide text (bidirectional overrides and isolates, zero-width
 * characters) are shown as escapes the way systemd shows them (`\n`, `\x1b`, `\u202e`), and a backslash as
 * `\\`, so no such string can move the cursor, recolour the screen or pass for other text. Text output only:
 * `--json` carries the exact string.
 */
export function visible(value: string): string {
  return value.replace(HIDDEN, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * A word of a command printed for the operator to paste into a POSIX shell: as it is when no shell reads
 * anything in it specially, else single-quoted. A word with characters visible() would escape goes in $'…'
 * (bash, zsh, ksh, busybox sh) with visible()'s escapes, which $'…' reads back, so the terminal shows nothing it
 * acts on and the pasted command still names exactly this string.
 */
export function shellWord(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  const plain = value.replaceAll('\\', '');
  if (visible(plain) === plain) return `'${value.replaceAll("'", `'\\''`)}'`;
  return `$'${visible(value).replaceAll("'", "\\'")}'`;
}
