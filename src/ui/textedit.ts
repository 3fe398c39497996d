// Editing one line of text as terminals do: a cursor, Home/End (^A/^E), erase left and right, ^U clears the
// line, ^W erases the word before the cursor, ^K erases to the end. The state is @inkjs/ui's text input state
// (value and cursor offset) as a plain function, so that the interview's one reducer owns it.
import type { Command } from './keys.js';

export interface LineState {
  value: string;
  cursor: number;
}

export function insert(s: LineState, text: string): LineState {
  const c = clamp(s);
  return { value: s.value.slice(0, c) + text + s.value.slice(c), cursor: c + text.length };
}

const clamp = (s: LineState) => Math.max(0, Math.min(s.cursor, s.value.length));

/** The line after an editing command; undefined when the command does not edit text. */
export function edit(s: LineState, cmd: Command): LineState | undefined {
  const c = clamp(s);
  const v = s.value;
  switch (cmd) {
    case 'left':
      return { value: v, cursor: Math.max(0, c - 1) };
    case 'right':
      return { value: v, cursor: Math.min(v.length, c + 1) };
    case 'home':
      return { value: v, cursor: 0 };
    case 'end':
      return { value: v, cursor: v.length };
    case 'backspace':
      return c === 0 ? { value: v, cursor: 0 } : { value: v.slice(0, c - 1) + v.slice(c), cursor: c - 1 };
    case 'delete':
      return { value: v.slice(0, c) + v.slice(c + 1), cursor: c };
    case 'killLine':
      return { value: v.slice(c), cursor: 0 };
    case 'killEnd':
      return { value: v.slice(0, c), cursor: c };
    case 'killWord': {
      // Like readline's unix-word-rubout: spaces before the cursor, then the word; "/" also ends a word, so
      // that ^W takes back one path component.
      let i = c;
      while (i > 0 && /[\s/]/.test(v[i - 1]!)) i--;
      while (i > 0 && !/[\s/]/.test(v[i - 1]!)) i--;
      return { value: v.slice(0, i) + v.slice(c), cursor: i };
    }
    default:
      return undefined;
  }
}

/** Text as a single-line field takes it: control characters dropped, line breaks inside a paste become spaces. */
export function pasted(text: string): string {
  return text
    .replace(/[\r\n]+$/, '')
    .replace(/\r\n|\r|\n/g, ' ')
    .replace(/[\u0000-\u001f\u007f]/g, '');
}
