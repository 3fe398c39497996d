// The built binary in a real terminal (tmux, 80×24): a whole interview, then `verify` on what it wrote.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN, cli, requireTool, tempDir } from './helpers.js';

const tmux = (...args: string[]) => spawnSync('tmux', args, { encoding: 'utf8' });

test('a whole interview in a real 80×24 terminal writes a bundle that verifies', async (t) => {
  requireTool('tmux', 'tmux');
  assert.ok(existsSync(BIN), 'the binary is built (npm run build)');
  const dir = tempDir(t, 'qh-tty-');
  const session = `qh-tty-${process.pid}`;
  const exitFile = join(dir, 'exit-code');
  // QEMU on PATH is a wrapper that logs each run, to count how often the wizard probes the host.
  const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
  const calls = join(dir, 'qemu-calls');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'qemu-system-x86_64'), `#!/bin/sh\necho "$1" >> ${calls}\nexec ${qemu} "$@"\n`);
  chmodSync(join(dir, 'bin', 'qemu-system-x86_64'), 0o755);
  const started = tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', '-c', dir, `sh -c 'PATH=${dir}/bin:$PATH ${process.execPath} ${BIN}; echo $? > ${exitFile}; sleep 60'`);
  assert.equal(started.status, 0, started.stderr);
  t.after(() => tmux('kill-session', '-t', session));

  const screen = () => tmux('capture-pane', '-p', '-t', session).stdout;
  const waitFor = async (re: RegExp, ms = 15_000) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const s = screen();
      if (re.test(s)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the screen never showed ${re}:\n${screen()}`);
  };
  const keys = async (...k: string[]) => {
    for (const key of k) {
      tmux('send-keys', '-t', session, ...(key.length === 1 || key.startsWith('/') ? ['-l', key] : [key]));
      await new Promise((r) => setTimeout(r, 150));
    }
  };

  const host = await waitFor(/1\/12 Host[\s\S]*QEMU/);
  assert.match(host.split('\n')[0]!, /^qemu-harden · 1\/12 Host/);
  await keys('Enter', 'Enter');
  await waitFor(/3\/12 Guests/);
  await keys('Enter', 'C-n', '/srv/vm/tty.qcow2');
  await waitFor(/Disk 1 path +\/srv\/vm\/tty\.qcow2/);
  await keys('Tab', '?');
  const why = await waitFor(/never guessed/);
  await keys('?');
  for (let i = 0; i < 7; i++) await keys('Enter');
  const review = await waitFor(/11\/12 Review/);
  assert.match(review.split('\n')[0]!, /^qemu-harden · 11\/12 Review/, 'the frame fits: its first line has not scrolled away');
  await keys('Enter');
  await waitFor(/✔ Bundle written to/);
  await keys('Enter');
  const until = Date.now() + 10_000;
  while (!existsSync(exitFile) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  assert.equal(readFileSync(exitFile, 'utf8').trim(), '0');
  const bundle = join(dir, 'qemu-harden-bundle');
  const v = cli(['verify', bundle]);
  assert.equal(v.code, 0, v.stdout);
  assert.match(why, /Disks and user-supplied files[\s\S]*never guessed/);
  assert.deepEqual(readFileSync(calls, 'utf8').split('\n').filter(Boolean).sort(), ['--version', '-cpu', '-machine', '-sandbox'], 'the host was probed once in the whole interview');
});

test('NO_COLOR turns colours off in a real terminal; without it the header is coloured', async (t) => {
  requireTool('tmux', 'tmux');
  const colours = /\u001b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;)/;
  for (const [name, env, expectColour] of [
    ['plain', '-u FORCE_COLOR TERM=xterm-256color NO_COLOR=1', false],
    ['colour', '-u FORCE_COLOR -u NO_COLOR TERM=xterm-256color', true],
  ] as const) {
    const session = `qh-colour-${name}-${process.pid}`;
    const started = tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', `env ${env} ${process.execPath} ${BIN}; sleep 30`);
    assert.equal(started.status, 0, started.stderr);
    t.after(() => tmux('kill-session', '-t', session));
    let screen = '';
    const until = Date.now() + 15_000;
    while (!/1\/12 Host/.test(screen) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      screen = tmux('capture-pane', '-e', '-p', '-t', session).stdout;
    }
    assert.match(screen, /1\/12 Host/);
    assert.equal(colours.test(screen), expectColour, `${name}: ${JSON.stringify(screen.slice(0, 200))}`);
  }
});
