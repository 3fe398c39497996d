// The built binary in a real terminal (tmux, 80×24): a whole interview, then `verify` on what it wrote.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fromAnswers } from '../steps/draft.js';
import { display } from '../steps/fields.js';
import { STEPS } from '../steps/index.js';
import type { HostFacts } from '../src/probe.js';
import { BIN, cli, requireTool, tempDir, waitUntil } from './helpers.js';

/**
 * A tmux server of the test's own, on a socket in `dir`: tests running side by side never share a server, so one
 * test's session ending (which ends a server with no session left) cannot take another's down. The server is
 * killed when the test ends.
 */
function tmuxServer(t: TestContext, dir: string) {
  const socket = join(dir, 'tmux.sock');
  const tmux = (...args: string[]) => spawnSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  t.after(() => tmux('kill-server'));
  return tmux;
}

/**
 * The wizard in a new 80×24 tmux session on the test's own server, started by `command` in `dir` (its exit code
 * written to `status`/exit-code, by default in dir, where the server's socket is too). `waitFor` polls the screen
 * until it matches.
 */
function wizardInTmux(t: TestContext, session: string, dir: string, command: string, poll = 100, status = dir) {
  const tmux = tmuxServer(t, status);
  const started = tmux(
    'new-session',
    '-d',
    '-s',
    session,
    '-x',
    '80',
    '-y',
    '24',
    '-c',
    dir,
    `sh -c '${command}; echo $? > ${join(status, 'exit-code')}; sleep 600'`,
  );
  assert.equal(started.status, 0, started.stderr);
  const screen = () => tmux('capture-pane', '-p', '-t', session).stdout;
  const waitFor = (want: RegExp | ((s: string) => boolean), timeoutMs = 60_000) =>
    waitUntil(
      `the screen to show ${String(want)}`,
      () => {
        const s = screen();
        return (typeof want === 'function' ? want(s) : want.test(s)) && s;
      },
      { timeoutMs, everyMs: poll, detail: screen },
    );
  /** The wizard's exit code, once the shell has written it (it creates the file before it writes into it). */
  const exitCode = () =>
    waitUntil('the wizard to exit', () => {
      const file = join(status, 'exit-code');
      return existsSync(file) && readFileSync(file, 'utf8').trim();
    });
  return { tmux, screen, waitFor, exitCode };
}

test('a whole interview in a real 80×24 terminal writes a bundle that verifies', async (t) => {
  requireTool('tmux', 'tmux');
  assert.ok(existsSync(BIN), 'the binary is built (npm run build)');
  const dir = tempDir(t, 'qh-tty-');
  const session = `qh-tty-${process.pid}`;
  // QEMU on PATH is a wrapper that logs each run, to count how often the wizard probes the host.
  const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
  const calls = join(dir, 'qemu-calls');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'qemu-system-x86_64'), `#!/bin/sh\necho "$1" >> ${calls}\nexec ${qemu} "$@"\n`);
  chmodSync(join(dir, 'bin', 'qemu-system-x86_64'), 0o755);
  const { tmux, waitFor, exitCode } = wizardInTmux(t, session, dir, `PATH=${dir}/bin:$PATH ${process.execPath} ${BIN}`);
  /** Keys in order, each its own send-keys; the wizard takes a burst of keys in order, so nothing waits between. */
  const keys = (...k: string[]) => {
    for (const key of k)
      tmux('send-keys', '-t', session, ...(key.length === 1 || key.startsWith('/') ? ['-l', key] : [key]));
  };

  const host = await waitFor(/1\/12 Host[\s\S]*QEMU/);
  assert.match(host.split('\n')[0]!, /^qemu-harden · 1\/12 Host/);
  keys('Enter', 'Enter');
  await waitFor(/3\/12 Guests/);
  // A new guest starts with a disk: its path has the focus.
  keys('Enter', '/srv/vm/tty.qcow2');
  await waitFor(/Disk 1 path +\/srv\/vm\/tty\.qcow2/);
  keys('Tab', '?');
  const why = await waitFor(/never guessed/);
  keys('?');
  for (let i = 0; i < 7; i++) keys('Enter');
  const review = await waitFor(/11\/12 Review/);
  assert.match(
    review.split('\n')[0]!,
    /^qemu-harden · 11\/12 Review/,
    'the frame fits: its first line has not scrolled away',
  );
  keys('Enter');
  // Started as `node …/dist/qemu-harden.js`, so that is how the next commands are written; a command too long for
  // the line goes on after " \". The wait is for the whole frame: a capture can catch it while Ink is still
  // drawing it.
  const next = [
    /^ {2}node \S*dist\/qemu-harden\.js verify \S*qemu-harden-bundle$/m,
    /^ {2}sudo \S*node\S* \S*dist\/qemu-harden\.js apply \S*qemu-harden-bundle$/m,
  ];
  const unwrapped = (s: string) => s.replace(/ \\\n */g, ' ');
  await waitFor((s) => /✔ Bundle written to/.test(s) && next.every((re) => re.test(unwrapped(s))));
  keys('Enter');
  assert.equal(await exitCode(), '0');
  const bundle = join(dir, 'qemu-harden-bundle');
  const v = await cli(['verify', bundle]);
  assert.equal(v.code, 0, v.stdout);
  assert.match(why, /Disks and user-supplied files[\s\S]*never guessed/);
  assert.deepEqual(
    readFileSync(calls, 'utf8').split('\n').filter(Boolean).sort(),
    ['--version', '-cpu', '-machine', '-sandbox'],
    'the host was probed once in the whole interview',
  );
});

test('NO_COLOR turns colours off in a real terminal; without it the header is coloured', async (t) => {
  requireTool('tmux', 'tmux');
  const tmux = tmuxServer(t, tempDir(t, 'qh-colour-'));
  const colours = /\u001b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;)/;
  for (const [name, env, expectColour] of [
    ['plain', '-u FORCE_COLOR TERM=xterm-256color NO_COLOR=1', false],
    ['colour', '-u FORCE_COLOR -u NO_COLOR TERM=xterm-256color', true],
  ] as const) {
    const session = `qh-colour-${name}`;
    const started = tmux(
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '80',
      '-y',
      '24',
      `env ${env} ${process.execPath} ${BIN}; sleep 600`,
    );
    assert.equal(started.status, 0, started.stderr);
    const capture = () => tmux('capture-pane', '-e', '-p', '-t', session).stdout;
    const screen = await waitUntil('the first step', () => /1\/12 Host/.test(capture()) && capture(), {
      everyMs: 100,
      detail: capture,
    });
    assert.equal(colours.test(screen), expectColour, `${name}: ${JSON.stringify(screen.slice(0, 200))}`);
  }
});

test('eight guests in a real 80×24 terminal: bursts, pastes, cursor editing, help in a text field, whole messages, the full map, shown = written', async (t) => {
  requireTool('tmux', 'tmux');
  const dir = tempDir(t, 'qh-tty8-');
  const session = `qh-tty8-${process.pid}`;
  const { tmux, waitFor, exitCode } = wizardInTmux(t, session, dir, `${process.execPath} ${BIN}`, 80);
  /** Several keys in one send-keys: they reach the terminal together, as a burst. */
  const burst = (...k: string[]) => tmux('send-keys', '-t', session, ...k);
  const text = (s: string) => tmux('send-keys', '-t', session, '-l', s);
  const paste = (s: string) => {
    tmux('set-buffer', '-b', session, s);
    tmux('paste-buffer', '-p', '-d', '-b', session, '-t', session);
  };
  /** The screen's text with wrapped lines joined, to find a message whole. */
  const joined = (s: string) =>
    s
      .split('\n')
      .map((l) => l.trim())
      .join(' ');
  const fitsAndHeaderShows = (s: string, re: RegExp) =>
    assert.match(s.split('\n')[0]!, re, `the frame fits 80×24: its first line is the header\n${s}`);
  const seen: Record<string, string> = {};

  await waitFor(/1\/12 Host/);
  burst('Enter', 'Enter');
  seen.guests = await waitFor(/3\/12 Guests · guest 1\/1/);
  burst(...Array<string>(7).fill('C-n'));
  await waitFor(/guest 8\/8 "guest8"/);

  // Cursor editing in the name: ^U clears, then "d8", ← and "b" typed at the cursor.
  burst('C-u');
  text('d8');
  burst('Left');
  text('b');
  await waitFor(/guest 8\/8 "db8"/);
  // A message longer than the terminal is wrapped, never cut: an invalid name.
  burst('C-e', 'C-u');
  text('build-');
  const bad = await waitFor(/Name +build- +✗/);
  fitsAndHeaderShows(bad, /^qemu-harden · 3\/12 Guests/);
  assert.ok(
    joined(bad).includes(
      '✗ Name: must be 1-24 characters: lower-case letters, digits and "-", starting with a letter and not ending with "-"',
    ),
    joined(bad),
  );
  burst('BSpace');
  await waitFor(/guest 8\/8 "build"/);
  // Help from inside a text field: F1 opens the why panel, ? would be typed.
  burst('F1');
  const help = await waitFor(/own system user/);
  fitsAndHeaderShows(help, /^qemu-harden · 3\/12 Guests/);
  burst('F1');
  await waitFor(/^(?![\s\S]*own system user)[\s\S]*F1\/\^G why/);
  burst('PageDown');
  seen.guests = await waitFor(/guest 1\/8 "guest1"/);

  // Disks: each guest's path pasted with a trailing newline; the paste is text, not Enter.
  burst('Enter');
  for (let g = 1; g <= 8; g++) {
    await waitFor(new RegExp(`4/12 Disks and user-supplied files · guest ${g}/8`));
    await waitFor(/› Disk 1 path/);
    paste(`/srv/vm/g${g}.qcow2\n`);
    const s = await waitFor(new RegExp(`Disk 1 path +/srv/vm/g${g}\\.qcow2`));
    fitsAndHeaderShows(s, /^qemu-harden · 4\/12 Disks/);
    if (g === 1) seen.disks = s;
    burst('PageDown');
  }
  // Network: typing on a choice picks the option it starts with: user-mode for even guests, tap for others.
  burst('Enter');
  for (let g = 1; g <= 8; g++) {
    await waitFor(new RegExp(`5/12 Network · guest ${g}/8`));
    text(g % 2 === 0 ? 'u' : 't');
    const s = await waitFor(g % 2 === 0 ? /user-mode/ : /tap \(pre-created/);
    if (g === 1) seen.network = s;
    burst('PageDown');
  }
  await waitFor(/5\/12 Network · guest 1\/8/);
  for (const id of ['display', 'passthrough', 'remote', 'limits', 'isolation']) {
    burst('Enter');
    seen[id] = await waitFor(new RegExp(`\\d+/12 ${STEPS.find((s) => s.id === id)!.title} · guest 1/8`));
  }
  burst('Enter');
  await waitFor(/11\/12 Review/);
  burst('Tab', 'Tab', 'Right', 'Right');
  await waitFor(/\[map\]/);
  const map: string[] = [];
  const marker = (s: string) => /lines \d+-\d+ of \d+/.exec(s)?.[0];
  let shown: string | undefined;
  let end = false;
  for (let page = 0; page < 60 && !end; page++) {
    // Each PageDown shows the next lines: wait until the "lines a-b of n" marker has moved.
    const before = shown;
    const s = await waitFor((x) => marker(x) !== undefined && marker(x) !== before);
    shown = marker(s);
    fitsAndHeaderShows(s, /^qemu-harden · 11\/12 Review/);
    map.push(...s.split('\n'));
    end = /lines \d+-(\d+) of \1/.test(s);
    if (!end) {
      // A page on: as many ↓ as the map shows lines, in one burst.
      const [, from, to] = /lines (\d+)-(\d+)/.exec(shown!)!;
      burst(...Array<string>(Number(to) - Number(from) + 1).fill('Down'));
    }
  }
  assert.ok(end, `the map's last page was reached: ${shown}`);
  const mapText = map.join('\n');
  assert.match(joined(mapText), /0 means every sandboxing setting it knows is used, 10 none of them; lower is better/);
  for (let g = 1; g <= 8; g++) {
    const name = g === 8 ? 'build' : `guest${g}`;
    assert.match(mapText, new RegExp(`${name} as qemu-${name} · exposure`), `the map lists ${name}`);
    assert.match(
      mapText,
      new RegExp(g % 2 === 0 ? `network +user-mode network from passt` : `network +tap qh-${name}`),
      `${name}'s network`,
    );
  }
  assert.match(mapText, /AppArmor +reading the rest of the file system/);
  // PgUp and PgDn jump from guest to guest: the window starts at that guest's part of the map.
  for (const [keys, g] of [
    [Array<string>(8).fill('PageUp'), 'guest1'],
    [['PageDown'], 'guest2'],
    [['PageDown', 'PageDown', 'PageUp'], 'guest3'],
  ] as const) {
    burst(...keys);
    const s = await waitFor(new RegExp(`guest ${g.slice(5)}/8 "${g}"; type a name`));
    fitsAndHeaderShows(s, /^qemu-harden · 11\/12 Review/);
    assert.match(
      s.split('\n')[4]!,
      new RegExp(`^${g} as qemu-${g} · exposure`),
      `${keys.join(' ')}: ${g} heads the map`,
    );
  }
  // Tab leaves the map wherever it is: the next row is Action.
  burst('Tab');
  await waitFor(/› Action/);

  burst('Enter');
  await waitFor(/✔ Bundle written to/);
  burst('Enter');
  assert.equal(await exitCode(), '0');

  // Every field shown on each step for guest 1 holds what answers.json now says.
  const written = fromAnswers(JSON.parse(readFileSync(join(dir, 'qemu-harden-bundle', 'answers.json'), 'utf8')));
  const host = {
    qemu: { machines: [], cpuModels: ['qemu64'], binary: 'qemu' },
    pci: [],
    usb: [],
    iommuGroups: 0,
  } as unknown as HostFacts;
  let compared = 0;
  for (const [id, s] of Object.entries(seen)) {
    const step = STEPS.find((x) => x.id === id)!;
    for (const f of step.fields({ draft: written, guest: 0, host })) {
      const row = s.split('\n').find((l) => l.slice(2).startsWith(f.label.padEnd(30)));
      if (!row || f.inactive?.(written)) continue;
      assert.ok(
        row.slice(32).startsWith(display(written, f)),
        `${id}: ${f.label} shows "${row.slice(32)}", answers.json has "${display(written, f)}"`,
      );
      compared++;
    }
  }
  assert.ok(compared >= 15, `${compared} shown values compared`);
  assert.equal(written.guests.length, 8);
});

test('the Done screen at 80 columns: its commands, copied as shown and pasted into a shell, run whole', async (t) => {
  requireTool('tmux', 'tmux');
  assert.ok(existsSync(BIN), 'the binary is built (npm run build)');
  // A long output directory, with spaces and quotes in it: no command fits on one line of 80 columns.
  const root = tempDir(t, 'qh-done-');
  const dir = join(root, 'bundles for the lab', "it's the operator's own place", 'qemu');
  mkdirSync(dir, { recursive: true });
  const answers = join(root, 'answers.json');
  writeFileSync(
    answers,
    JSON.stringify({
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [{ name: 'web', disks: [{ path: '/srv/vm/web.qcow2', format: 'qcow2' }] }],
    }),
  );
  const session = `qh-done-${process.pid}`;
  const { tmux, waitFor, exitCode } = wizardInTmux(
    t,
    session,
    dir,
    `${process.execPath} ${BIN} --answers ${answers}`,
    100,
    root,
  );
  await waitFor(/1\/12 Host/);
  tmux('send-keys', '-t', session, ...Array<string>(11).fill('Enter'));
  const done = await waitFor(/✔ Bundle written to[\s\S]*then read/i);
  const bundle = join(dir, 'qemu-harden-bundle');
  assert.ok(bundle.length > 80, `${bundle.length} characters`);
  const lines = done.split('\n');
  // What an operator copies: every line from the first command to the last, exactly as the terminal shows it.
  const shown = lines.slice(
    lines.findIndex((l) => l.startsWith('Next:')) + 1,
    lines.findIndex((l) => /^\s*then read/i.test(l)),
  );
  tmux('send-keys', '-t', session, 'Enter');
  assert.equal(await exitCode(), '0');

  // Pasted into a real shell in a terminal of the same size, where sudo only writes down what it was asked to run
  // (this test installs nothing) and node notes each exit code.
  const log = join(root, 'ran');
  const shell = `${session}-sh`;
  const started = tmux('new-session', '-d', '-s', shell, '-x', '80', '-y', '24', '-c', dir, 'sh');
  assert.equal(started.status, 0, started.stderr);
  t.after(() => tmux('kill-session', '-t', shell));
  tmux(
    'send-keys',
    '-t',
    shell,
    '-l',
    `LOG=${log}; sudo() { printf '%s\\n' "$@" > "$LOG.sudo"; echo sudo >> "$LOG"; }; ` +
      `node() { command node "$@"; echo "node $?" >> "$LOG"; }\n`,
  );
  tmux('set-buffer', '-b', shell, `${shown.join('\n')}\n`);
  tmux('paste-buffer', '-p', '-d', '-b', shell, '-t', shell);
  const ran = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const until = Date.now() + 60_000;
  while (ran().length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(ran(), ['node 0', 'node 0', 'sudo'], 'verify and apply --dry-run ran and passed; sudo was asked');
  assert.deepEqual(readFileSync(`${log}.sudo`, 'utf8').split('\n').filter(Boolean).slice(-2), ['apply', bundle]);
  // The terminal never wrapped them: each is continued with a backslash before the edge.
  assert.ok(shown.length > 3, `the commands take ${shown.length} lines: they are continued, not cut`);
  for (const l of shown) assert.ok(l.length < 80, `a line of ${l.length} columns: ${l}`);
});
