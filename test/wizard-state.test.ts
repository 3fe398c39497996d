import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STEPS } from '../steps/index.js';
import { validate } from '../src/answers.js';
import { loadPreset } from '../src/sources/preset.js';
import type { HostFacts } from '../src/probe.js';
import { fromAnswers, initialDraft, newGuest } from '../steps/draft.js';
import { display } from '../steps/fields.js';
import { checker } from '../src/ui/engine.js';
import { commandOf, decode } from '../src/ui/keys.js';
import { fieldsOf, initialState, reducer, screenOf, stepIssues, type State } from '../src/ui/state.js';

/** Raw terminal input, as Ink hands it over: one event may hold several keys. */
const press = (s: State, raw: string) => reducer(s, { type: 'input', raw });
const enter = (s: State) => press(s, '\r');
const esc = (s: State) => press(s, '\u001b');
const tab = (s: State) => press(s, '\t');
const right = (s: State) => press(s, '\u001b[C');
const type = (s: State, text: string) => press(s, text);
const BS = '\u007f';
/** A new interview's draft with one disk, so that its guest has something to boot. */
const draft = () => {
  const d = initialDraft();
  d.guests[0]!.disks = [{ path: '/srv/base.img', format: 'qcow2' }];
  return d;
};
const stepId = (s: State) => STEPS[s.step]!.id;
const goTo = (s: State, id: string) => {
  while (stepId(s) !== id) {
    const next = enter(s);
    assert.notEqual(next.step, s.step, `stuck on ${stepId(s)}: ${JSON.stringify(stepIssues(s))}`);
    s = next;
  }
  return s;
};

describe('wizard keymap', () => {
  test('named commands; ? and space are typed inside text fields, F1 and ^G are help everywhere', () => {
    const cmd = (raw: string, inText = false) => commandOf(decode(raw)[0]!, inText);
    assert.equal(cmd('\r'), 'next');
    assert.equal(cmd('\u001b'), 'back');
    assert.equal(cmd('\u001b[Z'), 'back');
    assert.equal(cmd('\t'), 'fieldNext');
    assert.equal(cmd('\u0003', true), 'quit');
    assert.equal(cmd('?'), 'help');
    assert.equal(cmd('?', true), undefined);
    assert.equal(cmd(' ', true), undefined);
    assert.equal(cmd('\u001bOP', true), 'help');
    assert.equal(cmd('\u001b[11~', true), 'help');
    assert.equal(cmd('\u0007', true), 'help');
    assert.equal(cmd('\u0015', true), 'killLine');
    assert.equal(cmd('\u0017', true), 'killWord');
  });

  test('keys that arrive together are each handled, in order', () => {
    assert.deepEqual(
      decode('\r\r').map((k) => k.name),
      ['return', 'return'],
    );
    assert.deepEqual(decode('\t\t'), [{ name: 'tab' }, { name: 'tab' }]);
    assert.deepEqual(decode('ab\u007fc\r'), [
      { name: 'text', text: 'ab' },
      { name: 'backspace' },
      { name: 'text', text: 'c' },
      { name: 'return' },
    ]);
  });
});

describe('wizard reducer', () => {
  test('the steps, in order, end in review and done', () => {
    assert.deepEqual(
      STEPS.map((s) => s.id),
      [
        'host',
        'usecase',
        'guests',
        'disks',
        'network',
        'display',
        'passthrough',
        'remote',
        'limits',
        'isolation',
        'review',
        'done',
      ],
    );
  });

  test('an invalid value blocks Enter with the message generate gives; fixing it lets the interview go on', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'guests');
    s = tab(s);
    s = type(s, 'x');
    const issues = stepIssues(s);
    assert.deepEqual(issues, [{ path: 'guests.0.vcpus', message: 'must be a whole number, not the text "1x"' }]);
    const blocked = enter(s);
    assert.equal(stepId(blocked), 'guests');
    assert.match(blocked.error!, /Fix the marked fields/);
    s = press(s, BS);
    s = press(s, BS);
    s = type(s, '4');
    assert.equal(s.draft.guests[0]!.vcpus, 4);
    assert.equal(stepId(enter(s)), 'disks');
  });

  test('Esc goes back without losing answers', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'guests');
    for (let i = 0; i < 6; i++) s = press(s, BS);
    s = type(s, 'web');
    s = enter(s);
    s = esc(esc(s));
    assert.equal(stepId(s), 'usecase');
    s = enter(s);
    assert.equal(s.draft.guests[0]!.name, 'web');
  });

  test('choosing emulation asks for a reason, which becomes the accepted risk', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'usecase');
    s = right(s);
    assert.equal(s.draft.useCase, 'emulation');
    assert.deepEqual(s.draft.acceptedRisks, [{ risk: 'emulation', reason: '' }]);
    assert.equal(fieldsOf(s).length, 2);
    assert.equal(stepId(enter(s)), 'usecase', 'an empty reason blocks the step');
    s = tab(s);
    s = type(s, 'trusted build inputs only');
    s = enter(s);
    assert.equal(stepId(s), 'guests');
    assert.equal(s.draft.acceptedRisks[0]!.reason, 'trusted build inputs only');
    s = esc(s);
    s = press(s, '\u001b[D');
    assert.deepEqual(s.draft.acceptedRisks, [], 'back to KVM: the acceptance goes away');
  });

  test('relaxing the sandbox needs a typed reason on the isolation step', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'isolation');
    s = tab(tab(tab(s)));
    assert.match(fieldsOf(s)[s.field]!.label, /fork and exec/);
    s = press(s, ' ');
    assert.equal((s.draft.guests[0]!.isolation as { sandbox: { spawn: string } }).sandbox.spawn, 'allow');
    assert.deepEqual(s.draft.acceptedRisks, [{ risk: 'sandbox-spawn', guest: 'guest1', reason: '' }]);
    assert.equal(stepId(enter(s)), 'isolation');
    s = { ...s, field: fieldsOf(s).length - 1 };
    s = type(s, 'a helper we audited and need');
    assert.equal(stepId(enter(s)), 'review');
  });

  test('guests and disks are added and removed with Ctrl+N / Ctrl+D', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    s = press(s, '\u000e');
    assert.equal(s.draft.guests.length, 2);
    assert.equal(s.guest, 1);
    s = press(s, '\u0004');
    assert.equal(s.draft.guests.length, 1);
    s = enter(s);
    s = press(s, '\u000e');
    assert.equal((s.draft.guests[0]!.disks as unknown[]).length, 1);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path');
    assert.equal(stepId(enter(s)), 'disks', 'a disk without a path blocks the step');
    s = type(s, '/srv/a.img');
    assert.equal(stepId(enter(s)), 'network');
  });

  test('before the schema has loaded nothing advances; once it has, the draft’s risks are synced', () => {
    const e = validate({
      schemaVersion: 1,
      useCase: 'emulation',
      guests: [{ name: 'a', disks: [{ path: '/srv/a.img', format: 'raw' }] }],
      acceptedRisks: [{ risk: 'emulation', reason: 'x'.repeat(12) }],
    });
    let s = initialState(fromAnswers({ ...e, acceptedRisks: [] }));
    assert.equal(s.check, undefined);
    assert.deepEqual(stepIssues(s), [], 'no schema, no findings');
    assert.equal(enter(s).step, 0, 'Enter waits for the schema');
    s = reducer(s, { type: 'ready', check: checker });
    assert.deepEqual(
      s.draft.acceptedRisks,
      [{ risk: 'emulation', reason: '' }],
      'the emulation risk now needs a reason',
    );
    assert.equal(enter(s).step, 1);
  });

  test('Ctrl+C asks first; y exits 130, n goes on', () => {
    let s = press(initialState(initialDraft(), undefined, checker), '\u0003');
    assert.equal(s.quitting, true);
    assert.equal(press(s, 'n').quitting, false);
    s = press(s, 'y');
    assert.equal(s.exit, 130);
  });

  test('review writes only on Enter, and done exits 0', () => {
    let s = goTo(initialState(draft(), '/tmp/x', checker), 'review');
    assert.equal(screenOf(s), 'review');
    s = enter(s);
    assert.equal(s.pending, 'write');
    s = reducer(s, { type: 'written', kind: 'bundle', path: '/tmp/x' });
    assert.equal(screenOf(s), 'done');
    assert.equal(enter(s).exit, 0);
  });

  test('--answers prefills every step: a preset goes straight through to review unchanged', () => {
    const preset = loadPreset('multi-tenant').answers;
    const s = goTo(initialState(fromAnswers(preset), undefined, checker), 'review');
    assert.deepEqual(validate(s.draft), validate(preset));
  });

  test('a new guest is sized from the host; disk throttling is set on the limits step', () => {
    assert.deepEqual(
      [newGuest(2, { cpus: 8, memoryMiB: 4096 }).vcpus, newGuest(2, { cpus: 8, memoryMiB: 4096 }).memoryMiB],
      [2, 1024],
    );
    assert.deepEqual(
      [newGuest(2, { cpus: 1, memoryMiB: 512 }).vcpus, newGuest(2, { cpus: 1, memoryMiB: 512 }).memoryMiB],
      [1, 256],
    );
    let s = goTo(initialState(draft(), undefined, checker), 'disks');
    s = type(press(s, '\u000e'), '/srv/t.img');
    s = goTo(s, 'limits');
    assert.equal(fieldsOf(s)[0]!.label, 'Disk 1 read bytes/s');
    s = type(s, '1048576');
    s = goTo(s, 'review');
    assert.equal(validate(s.draft).guests[0]!.disks[0]!.throttle.readBytesPerSecond, 1048576);
  });

  test('kernel, initrd and device tree are asked on the disks step and stay read-only boot files', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'disks');
    assert.equal(fieldsOf(s)[s.field]!.label, 'Kernel (read-only, optional)');
    s = type(s, '/srv/vmlinuz');
    s = tab(s);
    s = type(s, '/srv/initrd.img');
    assert.deepEqual(s.draft.guests[0]!.boot, { kernel: '/srv/vmlinuz', initrd: '/srv/initrd.img' });
    const a = validate(goTo(s, 'review').draft);
    assert.equal(a.guests[0]!.boot!.kernel, '/srv/vmlinuz');
    for (let i = 0; i < '/srv/initrd.img'.length; i++) s = press(s, BS);
    s = press(s, '\u001b[A');
    for (let i = 0; i < '/srv/vmlinuz'.length; i++) s = press(s, BS);
    assert.equal(s.draft.guests[0]!.boot, undefined, 'emptied: no boot object left behind');
  });
});

describe('what people type', () => {
  test('the cursor moves; ^A, ^E, ^W and ^U edit as in a shell; ^K erases to the end', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'disks');
    s = type(press(s, '\u0015'), '/srv/vm/old.img');
    s = press(s, '\u001b[D\u001b[D\u001b[D\u001b[D');
    s = press(s, '\u0017');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, '/srv/vm/.img', '^W takes back one path component');
    s = type(s, 'new');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, '/srv/vm/new.img', 'typed at the cursor');
    s = press(s, '\u0001');
    s = press(s, '\u001b[3~');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, 'srv/vm/new.img');
    s = type(s, '/');
    s = press(s, '\u0005');
    s = press(s, '\u001b[D\u001b[D\u001b[D\u001b[D\u000b');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, '/srv/vm/new');
    s = press(s, '\u0015');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, undefined, '^U clears what is before the cursor');
  });

  test('a bracketed paste is text, its trailing newline is not Enter; a burst of Enters goes two steps', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'disks');
    s = press(s, '\u0015\u001b[200~/srv/pasted.img\n\u001b[201~');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, '/srv/pasted.img');
    assert.equal(screenOf(s), 'form');
    assert.equal(STEPS[s.step]!.id, 'disks', 'the paste did not press Enter');
    s = press(s, '\r\r');
    assert.equal(STEPS[s.step]!.id, 'display', 'both Enters were handled');
    s = press(s, '\u001b[200~x\u001b[201~');
    assert.match(s.notice!, /Pasted text goes into text fields/);
  });

  test('the help key works in a text field, where ? is typed', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'limits');
    s = press(s, '?');
    assert.equal(s.help, false);
    s = press(s, '\u001bOP');
    assert.equal(s.help, true);
    s = press(s, '\u0007');
    assert.equal(s.help, false);
  });

  test('typing on a choice picks the option it starts with, or says why nothing happened', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'network');
    s = type(s, 't');
    assert.equal((s.draft.guests[0]!.network as { mode: string }).mode, 'tap');
    s = type(s, 'q');
    assert.match(s.notice!, /No choice of Network starts with "q"/);
    s = press(s, '\t');
    assert.equal(s.notice, undefined, 'the remark goes with the next key');
    s = goTo(s, 'display');
    s = press(s, '\t');
    s = type(s, 'n');
    assert.equal(s.draft.guests[0]!.serial?.enabled, false);
  });

  test('"Fix the marked fields first." goes away once the field is changed', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'guests');
    s = press(s, '\u0015');
    s = enter(s);
    assert.equal(s.error, 'Fix the marked fields first.');
    s = type(s, 'web');
    assert.equal(s.error, undefined);
  });

  test('seccomp off and on again keeps the typed reason; its options show as not applying while it is off', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'isolation');
    s = press(s, '\t\t\t ');
    s = { ...s, field: fieldsOf(s).length - 1 };
    s = type(s, 'a helper we audited and need');
    s = { ...s, field: 0 };
    s = press(s, ' ');
    assert.deepEqual(
      s.draft.acceptedRisks.map((r) => r.risk),
      ['sandbox-off'],
    );
    const fields = fieldsOf(s);
    for (const f of fields.slice(1, 5)) assert.equal(f.inactive?.(s.draft), 'seccomp is off', f.label);
    s = press(s, '\t ');
    assert.match(s.notice!, /does not apply: seccomp is off/);
    s = { ...s, field: 0 };
    s = press(s, ' ');
    assert.deepEqual(s.draft.acceptedRisks, [
      { risk: 'sandbox-spawn', guest: 'guest1', reason: 'a helper we audited and need' },
    ]);
  });
});

describe('every value shown is the value written', () => {
  const drafts: [string, () => ReturnType<typeof draft>][] = [
    ['a new interview', draft],
    [
      'a minimal answers file',
      () =>
        fromAnswers({
          schemaVersion: 1,
          useCase: 'virtualization',
          guests: [
            {
              name: 'min',
              disks: [{ path: '/srv/m.img', format: 'raw' }],
              migration: { enabled: true, port: 49152, tlsDir: '/etc/pki/qemu' },
            },
          ],
        }),
    ],
    ...(['kvm-tap', 'desktop-vnc', 'multi-tenant', 'tcg-build-runner'] as const).map(
      (p): [string, () => ReturnType<typeof draft>] => [`preset ${p}`, () => fromAnswers(loadPreset(p).answers)],
    ),
  ];
  for (const [name, make] of drafts)
    test(`${name}: each field of each step, for each guest, shows what answers.json gets`, () => {
      const d = make();
      const written = JSON.parse(JSON.stringify(validate(d))) as ReturnType<typeof draft>;
      let compared = 0;
      for (const step of STEPS)
        for (let gi = 0; gi < (step.perGuest ? d.guests.length : 1); gi++) {
          const ctx = { draft: d, guest: gi, host: undefined, check: checker };
          for (const f of step.fields(ctx)) {
            if (f.inactive?.(d)) continue;
            assert.equal(display(d, f), display(written, f), `${step.id} guest ${gi} ${f.label}`);
            compared++;
          }
        }
      assert.ok(compared > 20, `${compared} fields compared`);
    });
});

describe('the binary’s own lists', () => {
  test('machine types and CPU models are offered from the probed QEMU binary, security-supported machines first', () => {
    const host = {
      qemu: {
        binary: '/usr/bin/qemu-system-x86_64',
        machines: ['microvm', 'pc-q35-7.2', 'q35', 'isapc'],
        cpuModels: ['host', 'max', 'qemu64'],
      },
    } as unknown as HostFacts;
    let s = reducer(goTo(initialState(draft(), undefined, checker), 'guests'), { type: 'host', facts: host });
    const machine = fieldsOf(s).find((f) => f.label === 'Machine type')!;
    assert.equal(machine.kind, 'select');
    assert.deepEqual(
      machine.options!.map((o) => o.value),
      ['pc-q35-7.2', 'q35', 'microvm', 'isapc'],
    );
    const cpu = fieldsOf(s).find((f) => f.label === 'CPU model')!;
    assert.deepEqual(
      cpu.options!.map((o) => o.value),
      ['', 'host', 'max', 'qemu64'],
    );
    assert.equal(display(s.draft, cpu), 'default (host)');
    s = { ...s, field: fieldsOf(s).findIndex((f) => f.label === 'CPU model') };
    s = type(s, 'q');
    assert.equal(s.draft.guests[0]!.cpu?.model, 'qemu64');
    s = { ...s, field: fieldsOf(s).findIndex((f) => f.label === 'Machine type') };
    s = type(s, 'i');
    assert.equal(s.draft.guests[0]!.machine, 'isapc');
  });
});

test('a machine type or CPU model from an answers file that the probed binary lacks is pointed out', () => {
  const host = {
    qemu: { binary: '/usr/bin/qemu-system-x86_64', machines: ['q35', 'pc'], cpuModels: ['host', 'max'] },
  } as unknown as HostFacts;
  const d = fromAnswers({
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: [
      { name: 'arm', machine: 'virt', cpu: { model: 'cortex-a57' }, disks: [{ path: '/srv/a.img', format: 'raw' }] },
    ],
  });
  const notes = STEPS.find((x) => x.id === 'guests')!.notes!({ draft: d, guest: 0, host });
  assert.ok(
    notes.includes('"virt" is not a machine type of /usr/bin/qemu-system-x86_64: choose one it has (←/→).'),
    notes.join('\n'),
  );
  assert.ok(
    notes.some((n) => n.startsWith('CPU model "cortex-a57" is not one of')),
    notes.join('\n'),
  );
});
