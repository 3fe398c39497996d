// Keys as data. The terminal's raw input becomes a list of keys (decode), each key a named command through one
// table (BINDINGS); the footer lists the commands the current screen handles, labelled from the same table.
// Ink's own key parsing hands several keys that arrive together (`Enter Enter` over SSH, a fast typist) over as
// one string and cannot tell F1 from other function keys, so the wizard reads Ink's raw input events instead.

export type KeyName =
  | 'return'
  | 'escape'
  | 'tab'
  | 'backtab'
  | 'up'
  | 'down'
  | 'left'
  | 'right'
  | 'pageup'
  | 'pagedown'
  | 'home'
  | 'end'
  | 'backspace'
  | 'delete'
  | 'f1'
  | 'pasteStart'
  | 'pasteEnd'
  | 'text'
  | 'unknown';

/** One key, or a run of printable text typed (or pasted) at once. */
export interface Key {
  name: KeyName;
  /** The letter of a Ctrl+letter key. */
  ctrl?: string;
  /** The characters of a 'text' key. */
  text?: string;
}

const SEQUENCES: Record<string, KeyName> = {
  '\u001b': 'escape',
  '\u001b[A': 'up',
  '\u001bOA': 'up',
  '\u001b[B': 'down',
  '\u001bOB': 'down',
  '\u001b[C': 'right',
  '\u001bOC': 'right',
  '\u001b[D': 'left',
  '\u001bOD': 'left',
  '\u001b[Z': 'backtab',
  '\u001b[5~': 'pageup',
  '\u001b[6~': 'pagedown',
  '\u001b[H': 'home',
  '\u001bOH': 'home',
  '\u001b[1~': 'home',
  '\u001b[7~': 'home',
  '\u001b[F': 'end',
  '\u001bOF': 'end',
  '\u001b[4~': 'end',
  '\u001b[8~': 'end',
  '\u001b[3~': 'delete',
  '\u001bOP': 'f1',
  '\u001b[11~': 'f1',
  '\u001b[[A': 'f1',
  '\u001b[1P': 'f1',
  '\u001b[200~': 'pasteStart',
  '\u001b[201~': 'pasteEnd',
};

const ESCAPE_SEQUENCE = /^\u001b(?:\[\[[A-E]|\[[0-9;]*[~A-Za-z]|O[A-Za-z]|[^[O])?/;

/** Every key in raw terminal input, in order: escape sequences one key each, a run of printable text one key. */
export function decode(raw: string): Key[] {
  const out: Key[] = [];
  let i = 0;
  while (i < raw.length) {
    if (raw[i] === '\u001b') {
      const seq = ESCAPE_SEQUENCE.exec(raw.slice(i))![0];
      out.push({ name: SEQUENCES[seq] ?? SEQUENCES[seq.replace(/^\u001b\[1;\d+/, '\u001b[')] ?? 'unknown' });
      i += seq.length;
      continue;
    }
    const ch = String.fromCodePoint(raw.codePointAt(i)!);
    i += ch.length;
    const code = ch.codePointAt(0)!;
    if (ch === '\r' || ch === '\n') out.push({ name: 'return' });
    else if (ch === '\t') out.push({ name: 'tab' });
    else if (ch === '\u007f' || ch === '\b') out.push({ name: 'backspace' });
    else if (code >= 1 && code <= 26) out.push({ name: 'unknown', ctrl: String.fromCharCode(code + 96) });
    else if (code < 32 || (code >= 0x80 && code < 0xa0)) out.push({ name: 'unknown' });
    else {
      const last = out[out.length - 1];
      if (last?.name === 'text') last.text += ch;
      else out.push({ name: 'text', text: ch });
    }
  }
  return out;
}

export type Command =
  | 'next'
  | 'back'
  | 'fieldNext'
  | 'down'
  | 'up'
  | 'left'
  | 'right'
  | 'toggle'
  | 'guestPrev'
  | 'guestNext'
  | 'add'
  | 'remove'
  | 'help'
  | 'quit'
  | 'home'
  | 'end'
  | 'backspace'
  | 'delete'
  | 'killLine'
  | 'killWord'
  | 'killEnd';

interface Match {
  name?: KeyName;
  ctrl?: string;
  /** A printable character that is the command only outside text fields (inside one it is typed). */
  char?: string;
}

export interface Binding {
  command: Command;
  keys: Match[];
  /** How the footer writes the keys. */
  label: string;
  /** What the command does, as the footer says it; a screen may say it more exactly (see Screen.labels). */
  does: string;
}

export const BINDINGS: Binding[] = [
  { command: 'next', keys: [{ name: 'return' }], label: 'Enter', does: 'next' },
  { command: 'back', keys: [{ name: 'escape' }, { name: 'backtab' }], label: 'Esc', does: 'back' },
  // Tab always moves to the next field (on the review, the next row); ↓ and ↑ move between fields too, but inside
  // the review's file list or map they move through it.
  { command: 'fieldNext', keys: [{ name: 'tab' }], label: 'Tab', does: 'field' },
  { command: 'down', keys: [{ name: 'down' }], label: '↓', does: 'field' },
  { command: 'up', keys: [{ name: 'up' }], label: '↑', does: 'field' },
  { command: 'left', keys: [{ name: 'left' }], label: '←', does: 'change' },
  { command: 'right', keys: [{ name: 'right' }], label: '→', does: 'change' },
  { command: 'toggle', keys: [{ char: ' ' }], label: 'Space', does: 'change' },
  { command: 'guestPrev', keys: [{ name: 'pageup' }], label: 'PgUp', does: 'guest' },
  { command: 'guestNext', keys: [{ name: 'pagedown' }], label: 'PgDn', does: 'guest' },
  { command: 'add', keys: [{ ctrl: 'n' }], label: '^N', does: 'add' },
  // Removing a guest or a disk asks first. ^D is not the key: in a text field it erases forward, as in readline.
  { command: 'remove', keys: [{ ctrl: 'r' }], label: '^R', does: 'remove' },
  { command: 'help', keys: [{ name: 'f1' }, { ctrl: 'g' }, { char: '?' }], label: 'F1/^G', does: 'why' },
  { command: 'quit', keys: [{ ctrl: 'c' }], label: '^C', does: 'quit' },
  { command: 'home', keys: [{ name: 'home' }, { ctrl: 'a' }], label: '^A', does: 'start' },
  { command: 'end', keys: [{ name: 'end' }, { ctrl: 'e' }], label: '^E', does: 'end' },
  { command: 'backspace', keys: [{ name: 'backspace' }, { ctrl: 'h' }], label: '⌫', does: 'erase' },
  { command: 'delete', keys: [{ name: 'delete' }, { ctrl: 'd' }], label: 'Del/^D', does: 'erase' },
  { command: 'killLine', keys: [{ ctrl: 'u' }], label: '^U', does: 'clear' },
  { command: 'killWord', keys: [{ ctrl: 'w' }], label: '^W', does: 'erase word' },
  { command: 'killEnd', keys: [{ ctrl: 'k' }], label: '^K', does: 'erase to end' },
];

/** The command a key gives, if any. Printable characters bound to a command are typed inside text fields. */
export function commandOf(key: Key, inText: boolean): Command | undefined {
  for (const b of BINDINGS)
    for (const m of b.keys) {
      if (m.name && !m.ctrl && key.name === m.name && !key.ctrl) return b.command;
      if (m.ctrl && key.ctrl === m.ctrl) return b.command;
      if (m.char && !inText && key.name === 'text' && key.text === m.char) return b.command;
    }
  return undefined;
}

/** Footer entries, in the table's order, for the commands a screen handles; `labels` overrides what one does. */
export function footerOf(commands: Command[], labels: Partial<Record<Command, string>> = {}): string {
  const have = new Set(commands);
  const merged: [string, string][] = [];
  for (const b of BINDINGS) {
    if (!have.has(b.command)) continue;
    const does = labels[b.command] ?? b.does;
    const prev = merged[merged.length - 1];
    // Commands that do the same in two directions share one entry: "Tab/↓/↑ field", "←/→/Space change".
    if (prev && prev[1] === does) prev[0] += `/${b.label}`;
    else merged.push([b.label, does]);
  }
  return merged.map(([k, d]) => `${k} ${d}`).join(' · ');
}

/** How the footer writes a command's keys, for messages that name them. */
export function keyLabel(command: Command): string {
  return BINDINGS.find((b) => b.command === command)!.label;
}
