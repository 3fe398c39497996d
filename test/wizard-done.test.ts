// The Done screen's commands as it lays them out for the terminal: checked with real shells, since the point is
// that what is shown can be pasted and run. test/wizard-tty.test.ts pastes them from a real 80-column terminal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { commandLines, shellWords } from '../src/ui/views/text.js';

describe('commands as the Done screen lays them out', () => {
  // stdin is not a socket: bash reads ~/.bashrc when its stdin is one (its test for being run by sshd) at SHLVL 0.
  const run = (shell: string, lines: string[]) =>
    spawnSync(shell, ['-c', lines.join('\n')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .stdout.split('\0')
      .slice(0, -1);

  test('any arguments at any width: every line fits, and a shell given the lines runs exactly those arguments', () => {
    const char = fc.constantFrom(...'ab/ .-_\'"\\$`*#~;&|()<>!?=é\u202e\u200b'.split(''));
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: char, maxLength: 90 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 20, max: 80 }),
        (args, width) => {
          const lines = commandLines(['printf', '%s\\0', ...args], width);
          for (const l of lines) assert.ok(l.length <= width, `${JSON.stringify(l)} is wider than ${width}`);
          assert.deepEqual(run('bash', lines), args);
          if (args.every((a) => !/[\u202e\u200b]/.test(a))) assert.deepEqual(run('sh', lines), args, 'POSIX sh too');
        },
      ),
      { numRuns: 150 },
    );
  });

  test('a command that fits stays one line; a longer one goes on after " \\"', () => {
    assert.deepEqual(commandLines(['node', 'x.js', 'verify', '/srv/b'], 40), ['  node x.js verify /srv/b']);
    assert.deepEqual(commandLines(['sudo', '/usr/bin/node', '/opt/qh/dist/qemu-harden.js', 'apply', '/srv/b'], 40), [
      '  sudo /usr/bin/node \\',
      '    /opt/qh/dist/qemu-harden.js apply \\',
      '    /srv/b',
    ]);
    assert.deepEqual(shellWords(`sudo '/opt/my node/node' /a/b.js`), ['sudo', '/opt/my node/node', '/a/b.js']);
  });
});
