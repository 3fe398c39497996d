// Whole interviews through the real Ink app, keys written to its stdin, frames read back.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { render } from 'ink-testing-library';
import { validate } from '../src/answers.js';
import type { HostFacts } from '../src/probe.js';
import { App } from '../src/ui/App.js';
import { initialDraft } from '../steps/draft.js';
import { cli, tempDir, waitUntil } from './helpers.js';

const KEY = {
  enter: '\r',
  esc: '\u001B',
  tab: '\t',
  shiftTab: '\u001B[Z',
  down: '\u001B[B',
  up: '\u001B[A',
  right: '\u001B[C',
  left: '\u001B[D',
  ctrlC: '\u0003',
  ctrlN: '\u000E',
  ctrlR: '\u0012',
  ctrlD: '\u0004',
  ctrlA: '\u0001',
  backspace: '\u007F',
  pageDown: '\u001B[6~',
};

const HOST: HostFacts = {
  cpuVirtualization: 'vmx',
  kvm: { present: true, owner: 'root', group: 'kvm', mode: '0660' },
  tun: { present: true, group: 'root', mode: '0666' },
  vhostNet: true,
  passt: true,
  virtiofsd: 'c-only',
  qemu: { binary: '/usr/bin/qemu-system-x86_64', version: '7.2.22', sandbox: true, machines: [], cpuModels: [] },
  systemdVersion: 252,
  cgroup: 'v2',
  confinement: [
    {
      id: 'apparmor',
      name: 'AppArmor',
      noun: 'profile',
      enforced: true,
      evidence: '/sys/module/apparmor/parameters/enabled: Y',
    },
  ],
  groups: { kvm: true, qemuNet: false },
  iommuGroups: 0,
  pci: [],
  usb: [],
  cpus: 8,
  memoryMiB: 32768,
};

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

function start(outDir: string) {
  let code: number | undefined;
  const app = render(
    <App draft={initialDraft()} outDir={outDir} probe={async () => HOST} onExit={(c) => (code = c)} />,
  );
  const press = async (...keys: string[]) => {
    for (const k of keys) {
      await tick();
      app.stdin.write(k);
      await tick();
    }
  };
  const waitFor = (re: RegExp, timeoutMs = 60_000) =>
    waitUntil(`a frame matching ${re}`, () => re.test(app.lastFrame() ?? '') && app.lastFrame()!, {
      timeoutMs,
      everyMs: 50,
      detail: () => `last frame:\n${app.lastFrame()}`,
    });
  const erase = async (n: number) => press(...Array<string>(n).fill(KEY.backspace));
  return { app, press, waitFor, erase, code: () => code };
}

function frameFits(frame: string) {
  const lines = frame.split('\n');
  assert.ok(lines.length < 24, `frame is ${lines.length} lines`);
}

describe('the interview, driven through Ink', () => {
  test('keys typed before the first frame’s engine has loaded are held and replayed in order', async (t) => {
    const app = render(
      <App draft={initialDraft()} outDir={join(tempDir(t), 'b')} probe={async () => HOST} onExit={() => undefined} />,
    );
    t.after(() => app.unmount());
    app.stdin.write(KEY.enter);
    app.stdin.write(KEY.enter);
    app.stdin.write(KEY.tab);
    app.stdin.write('2');
    await waitUntil(
      'two steps on, the second field typed into',
      () => /3\/12 Guests[\s\S]*vCPUs +12/.test(app.lastFrame() ?? ''),
      {
        everyMs: 50,
        detail: () => app.lastFrame() ?? '',
      },
    );
  });

  test('one KVM guest to a written bundle, with a wrong value fixed on the way', async (t) => {
    const out = join(tempDir(t), 'bundle');
    const w = start(out);
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.waitFor(/\/dev\/kvm is here/);
    await w.press(KEY.enter, KEY.enter);
    await w.waitFor(/3\/12 Guests/);
    await w.erase(6);
    await w.press('db', KEY.tab, KEY.backspace, 'x');
    frameFits(await w.waitFor(/vCPUs +x +✗[\s\S]*✗ vCPUs: must be a whole number, not the text "x"/));
    await w.press(KEY.enter);
    await w.waitFor(/Fix the marked fields first/);
    await w.press(KEY.backspace, KEY.backspace, '2', KEY.enter);
    await w.waitFor(/4\/12 Disks/);
    // A new guest starts with a disk to fill in: its path has the focus.
    await w.press('/srv/vm/db.qcow2', KEY.enter);
    await w.waitFor(/5\/12 Network/);
    for (let i = 0; i < 6; i++) await w.press(KEY.enter);
    frameFits(await w.waitFor(/11\/12 Review/));
    await w.press(KEY.tab, KEY.tab, KEY.right);
    await w.waitFor(/\[risks\]/);
    await w.waitFor(/No accepted risks/);
    await w.press(KEY.right);
    const before = /db as qemu-db · exposure ([0-9.]+) \(target ≤ 1\)/.exec(
      await w.waitFor(/db as qemu-db · exposure [0-9.]+ \(target ≤ 1\)/),
    )![1];
    await w.press(KEY.esc, KEY.esc, KEY.esc, KEY.esc, KEY.esc, KEY.esc);
    await w.waitFor(/5\/12 Network/);
    await w.press(KEY.right);
    await w.waitFor(/user-mode/);
    for (let i = 0; i < 6; i++) await w.press(KEY.enter);
    await w.waitFor(/11\/12 Review/);
    await w.waitFor(/\[map\]/);
    // User-mode networking is passt's, in a unit of its own: QEMU's unit keeps no network, its target and its
    // measured exposure stay what they were without one.
    const after = /db as qemu-db · exposure ([0-9.]+) \(target ≤ 1\)/.exec(
      await w.waitFor(/db as qemu-db · exposure [0-9.]+ \(target ≤ 1\)/),
    )![1];
    assert.equal(after, before, 'passt leaves QEMU’s unit as closed as no network does');
    await w.press(KEY.enter);
    await w.waitFor(/✔ Bundle written to/);
    await w.press(KEY.enter);
    assert.equal(await waitUntil('the wizard to exit', () => w.code(), { everyMs: 20 }), 0);
    const answers = validate(JSON.parse(readFileSync(join(out, 'answers.json'), 'utf8')));
    assert.equal(answers.guests[0]!.name, 'db');
    assert.equal(answers.guests[0]!.vcpus, 2);
    assert.equal((await cli(['verify', out])).code, 0);
  });

  test('three guests with tap and VNC, going back to change the first', async (t) => {
    const out = join(tempDir(t), 'bundle');
    const w = start(out);
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.press(KEY.enter, KEY.enter);
    await w.waitFor(/Guests · guest 1\/1/);
    await w.press(KEY.ctrlN, KEY.ctrlN);
    await w.waitFor(/guest 3\/3 "guest3"/);
    await w.press(KEY.enter, KEY.pageDown);
    for (let g = 0; g < 3; g++) {
      await w.waitFor(new RegExp(`Disks and user-supplied files · guest ${g + 1}/3`));
      await w.press(`/srv/vm/g${g}.img`, KEY.pageDown);
    }
    await w.press(KEY.enter);
    for (let g = 0; g < 3; g++) {
      await w.waitFor(new RegExp(`Network · guest ${g + 1}/3`));
      await w.press(KEY.right, KEY.right, KEY.pageDown);
    }
    await w.waitFor(/tap \(pre-created/);
    await w.press(KEY.enter);
    await w.waitFor(/6\/12 Display/);
    await w.press(KEY.right, KEY.enter);
    await w.waitFor(/7\/12 Passthrough/);
    await w.press(KEY.esc, KEY.esc, KEY.esc);
    await w.waitFor(/4\/12 Disks and user-supplied files · guest 1\/3/);
    await w.press(KEY.esc);
    await w.waitFor(/3\/12 Guests/);
    await w.erase(6);
    await w.press('web', KEY.enter);
    await w.waitFor(/4\/12 Disks and user-supplied files · guest 1\/3 "web"/);
    await w.waitFor(/\/srv\/vm\/g0\.img/);
    for (let i = 0; i < 7; i++) await w.press(KEY.enter);
    await w.waitFor(/11\/12 Review/);
    await w.press(KEY.enter);
    await w.waitFor(/✔ Bundle written to/);
    const answers = validate(JSON.parse(readFileSync(join(out, 'answers.json'), 'utf8')));
    assert.deepEqual(
      answers.guests.map((g) => g.name),
      ['web', 'guest2', 'guest3'],
    );
    assert.deepEqual(
      answers.guests.map((g) => g.network.mode),
      ['tap', 'tap', 'tap'],
    );
    assert.equal(answers.guests[0]!.display.mode, 'vnc-unix');
    assert.equal(answers.guests[0]!.disks[0]!.path, '/srv/vm/g0.img');
    assert.ok(existsSync(join(out, 'root/etc/systemd/system/qemu-guest3-tap.service')));
    assert.equal((await cli(['verify', out])).code, 0);
  });

  test('TCG needs an acknowledgement that ends up in the bundle README', async (t) => {
    const out = join(tempDir(t), 'bundle');
    const w = start(out);
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.press(KEY.enter, KEY.right);
    await w.waitFor(/Emulation \(TCG\): QEMU gives NO isolation guarantee/);
    await w.press(KEY.enter);
    // Enter without the reason: it is marked now, and focus is on it.
    await w.waitFor(/› Why is that acceptable\? +✗[\s\S]*Fix the marked fields/);
    await w.press('runs our own trusted build inputs', KEY.enter);
    await w.waitFor(/3\/12 Guests/);
    await w.press(KEY.enter, '/srv/vm/tcg.img');
    for (let i = 0; i < 7; i++) await w.press(KEY.enter);
    await w.waitFor(/11\/12 Review/);
    await w.press(KEY.enter);
    await w.waitFor(/✔ Bundle written to/);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    assert.match(readme.split('\n\n')[1]!, /no isolation guarantee/);
    assert.match(readme, /runs our own trusted build inputs/);
  });

  test('an existing image gets qemu-img’s reading as a hint; the chosen format stays', async (t) => {
    const dir = tempDir(t);
    const image = join(dir, 'existing.img');
    writeFileSync(image, Buffer.alloc(1024 * 1024));
    const w = start(join(dir, 'bundle'));
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.press(KEY.enter, KEY.enter, KEY.enter, image);
    await w.waitFor(/qemu-img reads it as raw, you chose qcow2/);
    await w.press(KEY.tab, KEY.right);
    await w.waitFor(/qemu-img agrees: raw/);
  });

  test('Ctrl+R asks before a guest goes; Ctrl+D in its name erases one character', async (t) => {
    const w = start(join(tempDir(t), 'bundle'));
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.press(KEY.enter, KEY.enter, KEY.ctrlN);
    await w.waitFor(/guest 2\/2 "guest2"[\s\S]*\^N add guest · \^R remove/);
    await w.press(KEY.ctrlA, KEY.ctrlD);
    await w.waitFor(/guest 2\/2 "uest2"/);
    await w.press(KEY.ctrlR);
    const asked = await w.waitFor(/Remove guest 2 "uest2" and all its answers\? \(y\/n\)/);
    assert.match(asked, /y remove it · n keep it/);
    await w.press('n');
    await w.waitFor(/guest 2\/2 "uest2"[\s\S]*\^R remove/);
    await w.press(KEY.ctrlR, 'y');
    await w.waitFor(/guest 1\/1 "guest1"/);
  });

  test('Ctrl+C asks, then quits with 130 and writes nothing', async (t) => {
    const dir = tempDir(t);
    const w = start(join(dir, 'bundle'));
    t.after(() => w.app.unmount());
    await w.waitFor(/1\/12 Host/);
    await w.press(KEY.enter, KEY.enter, KEY.ctrlC);
    await w.waitFor(/Quit without writing anything\? \(y\/n\)/);
    await w.press('n');
    await w.waitFor(/3\/12 Guests/);
    assert.doesNotMatch(w.app.lastFrame()!, /Quit without writing/);
    await w.press(KEY.ctrlC, 'y');
    assert.equal(await waitUntil('the wizard to exit', () => w.code(), { everyMs: 20 }), 130);
    assert.deepEqual(readdirSync(dir), []);
  });
});
