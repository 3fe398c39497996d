// Reads the settings of a generated unit file the way systemd does for the parts the tests need: line
// continuations, comments, double-quoted words with C escapes, and %% / $$ in ExecStart.
import { execFileSync } from 'node:child_process';
import { chownSync } from 'node:fs';
import { join } from 'node:path';
import { systemdExecWord } from '../src/escape.js';

export function unitSettings(text: string): [string, string][] {
  const out: [string, string][] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (pending === '' && (raw.startsWith('#') || raw.startsWith(';') || raw.trim() === '' || raw.startsWith('[')))
      continue;
    if (raw.endsWith('\\')) {
      pending += raw.slice(0, -1) + ' ';
      continue;
    }
    const line = pending + raw;
    pending = '';
    const eq = line.indexOf('=');
    if (eq > 0) out.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}

/** Split an ExecStart= value into argv, undoing systemdWord(). */
export function execArgv(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (value[i] === ' ') i++;
    if (i >= value.length) break;
    let w = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length && value[i] !== '"') {
        if (value[i] === '\\') {
          w += value[i + 1];
          i += 2;
        } else w += value[i++];
      }
      i++;
    } else while (i < value.length && value[i] !== ' ') w += value[i++];
    words.push(w.replaceAll('%%', '%').replaceAll('$$', '$'));
  }
  return words;
}

export function execStart(unitText: string): string[] {
  const v = unitSettings(unitText).find(([k]) => k === 'ExecStart');
  if (!v) throw new Error('no ExecStart= in unit');
  return execArgv(v[1]);
}

/** A drop-in that starts the same QEMU command line on another disk, for the cross-guest proofs. */
export function diskSwapDropIn(unit: string, from: string, to: string, extra: string[] = []): string {
  const argv = execStart(unit);
  let swapped = false;
  const exec = argv.map((w, i) => {
    if (argv[i - 1] !== '-blockdev') return w;
    const node = JSON.parse(w) as { filename?: string };
    if (node.filename !== from) return w;
    swapped = true;
    return JSON.stringify({ ...node, filename: to });
  });
  if (!swapped) throw new Error(`the unit's command line has no disk ${from}`);
  return [
    '[Service]',
    'ExecStart=',
    `ExecStart=${exec.map(systemdExecWord).join(' ')}`,
    'Restart=no',
    ...extra,
    '',
  ].join('\n');
}

/** The ExecStart= line of a unit with its continuation lines, as written in the file. */
export function execStartBlock(unit: string): string {
  const lines = unit.split('\n');
  const start = lines.findIndex((l) => l.startsWith('ExecStart='));
  if (start < 0) throw new Error('no ExecStart= in unit');
  let end = start;
  while (lines[end]!.endsWith('\\')) end++;
  return lines.slice(start, end + 1).join('\n');
}

/** What a guest unit's ExecStartPre= does before QEMU starts: the FIFO pair of the QMP monitor ExecStop= writes to. */
export function makeStopPipe(run: string, uid?: number): void {
  for (const end of ['in', 'out']) {
    execFileSync('mkfifo', ['-m', '0600', join(run, `stop.${end}`)]);
    if (uid !== undefined) chownSync(join(run, `stop.${end}`), uid, uid);
  }
}
