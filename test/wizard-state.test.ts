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
import { fieldsOf, initialState, reducer, screenOf, shownIssues, stepIssues, type State } from '../src/ui/state.js';

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
    assert.equal(cmd('\u0004', true), 'delete', '^D erases forward, as in readline');
    assert.equal(cmd('\u0004'), 'delete', '^D never removes a guest or a disk');
    assert.equal(cmd('\u0012'), 'remove');
    assert.equal(cmd('\u001b[B'), 'down');
    assert.equal(cmd('\u001b[A'), 'up');
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
    assert.deepEqual(issues, [
      { path: 'guests.0.vcpus', message: 'must be a whole number, not the text "1x"', label: 'vCPUs' },
    ]);
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
    assert.deepEqual(
      fieldsOf(s).map((f) => f.label),
      ['Use case', 'Why is that acceptable?', 'Start from'],
    );
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

  test('Ctrl+N adds a guest or a disk; Ctrl+R asks before it removes one, and n keeps it', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    s = press(s, '\u000e');
    assert.equal(s.draft.guests.length, 2);
    assert.equal(s.guest, 1);
    s = press(s, '\u0012');
    assert.equal(s.confirm?.question, 'Remove guest 2 "guest2" and all its answers? (y/n)');
    assert.equal(s.draft.guests.length, 2, 'nothing is removed before the answer');
    assert.equal(press(s, 'x').confirm, s.confirm, 'other keys wait for y or n');
    s = press(s, 'n');
    assert.equal(s.confirm, undefined);
    assert.equal(s.draft.guests.length, 2, 'n keeps it');
    s = press(press(s, '\u0012'), '\u001b');
    assert.equal(s.draft.guests.length, 2, 'Esc keeps it');
    s = press(press(s, '\u0012'), 'y');
    assert.equal(s.draft.guests.length, 1, 'y removes it');
    s = press(s, '\u0012');
    assert.equal(s.confirm, undefined);
    assert.match(s.notice!, /only guest cannot be removed/);
    s = enter(s);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path', 'a new guest starts with a disk to fill in');
    s = press(s, '\u000e');
    assert.equal((s.draft.guests[0]!.disks as unknown[]).length, 2);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 2 path');
    s = type(s, '/srv/b.img');
    s = press(press(s, '\u0012'), 'y');
    assert.deepEqual(s.draft.guests[0]!.disks, [{ path: '', format: 'qcow2', readOnly: false }]);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Kernel (read-only, optional)');
    s = enter(s);
    assert.equal(stepId(s), 'disks', 'a disk without a path blocks the step');
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path', 'focus goes to the marked field');
    s = type(s, '/srv/a.img');
    assert.equal(stepId(enter(s)), 'network');
  });

  test('Ctrl+D in a text field erases the character under the cursor, as readline does; it never removes', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'disks');
    s = press(s, '\u0001\u0004');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, 'srv/base.img');
    s = press(s, '\u0005\u0004');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, 'srv/base.img', 'at the end of the line it erases nothing');
    s = { ...press(s, '\u0001/'), field: 1 };
    s = press(s, '\u0004');
    assert.equal((s.draft.guests[0]!.disks as unknown[]).length, 1, 'on a choice it removes nothing either');
    assert.match(s.notice!, /Del\/\^D erase in text fields; \^R removes/);
    s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    s = press(s, '\u000e\u0001\u0004');
    assert.equal(s.draft.guests.length, 2);
    assert.equal(s.draft.guests[1]!.name, 'uest2');
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
    s = press(s, '\u0012y');
    assert.equal(fieldsOf(s)[s.field]!.label, 'Kernel (read-only, optional)', 'with no disk the kernel comes first');
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

describe('a Windows 11 guest from the interview', () => {
  const focus = (s: State, label: string) => {
    for (let i = 0; i < 40 && fieldsOf(s)[s.field]!.label !== label; i++) s = tab(s);
    assert.equal(fieldsOf(s)[s.field]!.label, label);
    return s;
  };
  const notes = (s: State) => STEPS[s.step]!.notes?.({ draft: s.draft, guest: 0, host: undefined }) ?? [];

  test('the use-case step offers the presets while the guests are untouched; windows-11 brings Secure Boot and a TPM', () => {
    let s = focus(goTo(initialState(initialDraft(), undefined, checker), 'usecase'), 'Start from');
    for (let i = 0; i < 20 && s.draft.guests[0]!.name !== 'win11'; i++) s = right(s);
    const g = s.draft.guests[0]!;
    assert.equal(g.name, 'win11');
    assert.equal(g.tpm, 'tpm2');
    assert.deepEqual(g.firmware, {
      type: 'uefi',
      secureBoot: true,
      code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
      varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    });
    assert.ok(
      notes(s).some((n) => n.startsWith('windows-11: Every disk is virtio') && n.includes('virtio-win')),
      'the step says which drivers the guest needs',
    );
    for (let i = 0; i < 20 && s.draft.guests[0]!.name !== 'guest1'; i++) s = right(s);
    assert.deepEqual(s.draft.guests, initialDraft().guests, 'back to the blank guest, nothing of the preset left');
    for (let i = 0; i < 20 && s.draft.guests[0]!.name !== 'win11'; i++) s = right(s);
    s = goTo(s, 'guests');
    s = type(s, '-a');
    assert.equal(s.draft.guests[0]!.name, 'win11-a');
    s = focus(esc(s), 'Start from');
    assert.match(fieldsOf(s)[s.field]!.inactive?.(s.draft) ?? '', /edited/, 'no preset replaces typed answers');
    const kept = right(s);
    assert.equal(kept.draft.guests[0]!.name, 'win11-a');
  });

  test('the guests step asks for the TPM, and says why its state matters', () => {
    let s = focus(goTo(initialState(draft(), undefined, checker), 'guests'), 'TPM');
    assert.equal(display(s.draft, fieldsOf(s)[s.field]!), 'none');
    assert.match(fieldsOf(s)[s.field]!.hint!, /BitLocker/);
    assert.match(STEPS[s.step]!.why.join(' '), /as sensitive as the disk/);
    s = right(s);
    assert.equal(s.draft.guests[0]!.tpm, 'tpm2');
    assert.equal(validate(s.draft).guests[0]!.tpm, 'tpm2');
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
            // A field whose path starts with "$" is the interview's own (the preset to start from), not an answer.
            if (f.inactive?.(d) || String(f.path[0]).startsWith('$')) continue;
            assert.equal(display(d, f), display(written, f), `${step.id} guest ${gi} ${f.label}`);
            compared++;
          }
        }
      assert.ok(compared > 20, `${compared} fields compared`);
    });
});

describe('the release the bundle is for', () => {
  test('the probe fills in this host’s release, shown on the Host step; a release the answers name stays', () => {
    const facts = { target: 'debian-13' } as unknown as HostFacts;
    const fresh = reducer(initialState(draft(), undefined, checker), { type: 'host', facts });
    assert.equal(fresh.draft.host?.target, 'debian-13');
    const release = fieldsOf(goTo(fresh, 'host')).find((f) => f.label === 'Release')!;
    assert.equal(display(fresh.draft, release), 'Debian 13 "trixie"');
    assert.equal(validate(fresh.draft).host.target, 'debian-13', 'what is shown is what the answers get');
    const named = { ...draft(), host: { target: 'ubuntu-24.04' as const } };
    const kept = reducer(initialState(named, undefined, checker), { type: 'host', facts });
    assert.equal(kept.draft.host?.target, 'ubuntu-24.04');
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

test('the disks step says how each host serves a shared folder, and under SELinux which it refuses', () => {
  const note = (target: 'debian-12' | 'debian-13', confinement: 'apparmor' | 'selinux') => {
    const d = fromAnswers({
      schemaVersion: 1,
      useCase: 'virtualization',
      host: { target, confinement },
      guests: [{ name: 'g', disks: [{ path: '/srv/g.img', format: 'raw' }], shares: [{ path: '/srv/s', tag: 's' }] }],
    });
    const notes = STEPS.find((x) => x.id === 'disks')!.notes!({ draft: d, guest: 0, host: undefined });
    return notes.find((n) => n.includes('shared folders'))!;
  };
  assert.match(note('debian-12', 'apparmor'), /over 9p, inside its own unit and AppArmor profile$/);
  assert.match(
    note('debian-12', 'selinux'),
    /over 9p, inside its own unit and SELinux context: each folder is labelled with the guest’s category pair$/,
  );
  assert.match(note('debian-13', 'apparmor'), /its own virtiofsd unit, as the guest’s user, seeing only that folder;/);
  assert.match(
    note('debian-13', 'selinux'),
    /its own virtiofsd unit, as the guest’s user, seeing only that folder and in the guest’s SELinux context, the folder labelled with the guest’s category pair;/,
  );
});

describe('what the interview asks, and when it complains', () => {
  const issuesShown = (s: State) => shownIssues(s).map((i) => `${i.label}: ${i.message}`);

  test('an empty field the interview asks for is a question, not an error, until the operator acts on it', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'disks');
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path');
    assert.equal(stepIssues(s).length, 1, 'the path is missing');
    assert.deepEqual(issuesShown(s), [], 'but nothing is marked before the operator has done anything');
    s = tab(s);
    assert.deepEqual(issuesShown(s), ['Disk 1 path: must be an absolute path'], 'leaving it empty is acting on it');

    s = goTo(initialState(draft(), undefined, checker), 'usecase');
    s = right(s);
    assert.equal(fieldsOf(s)[1]!.label, 'Why is that acceptable?');
    assert.deepEqual(issuesShown(s), [], 'the reason just asked for is not an error yet');
    s = tab(s);
    assert.deepEqual(issuesShown(s), [], 'nor once focus reaches it');
    s = type(s, 'short');
    assert.deepEqual(issuesShown(s), [
      'Why is that acceptable?: must say in at least 10 characters why the risk is acceptable',
    ]);
    s = press(s, '\u0015');
    s = { ...s, field: 0 };
    s = enter(s);
    assert.equal(stepId(s), 'usecase');
    assert.equal(fieldsOf(s)[s.field]!.label, 'Why is that acceptable?', 'Enter takes focus to what is missing');
    assert.equal(issuesShown(s).length, 1, 'and from then on it is marked');
  });

  test('defaults are never errors: TCP listeners start on an address the unit allows and a port no guest uses', () => {
    const stepOfId = (id: string) => STEPS.find((x) => x.id === id)!;
    for (const net of ['none', 'user', 'tap'] as const)
      for (const mode of stepOfId('display')
        .fields({ draft: draft(), guest: 0, host: undefined })[0]!
        .options!.map((o) => o.value)) {
        let d = fromAnswers({
          schemaVersion: 1,
          useCase: 'virtualization',
          guests: ['a', 'b', 'c'].map((name) => ({ name, disks: [{ path: `/srv/${name}.img`, format: 'raw' }] })),
        });
        let s = initialState(d, undefined, checker);
        // Every guest takes the same choices on the network, display and remote steps, one after the other.
        const at = (x: State, id: string, guest: number): State => ({
          ...x,
          step: STEPS.indexOf(stepOfId(id)),
          guest,
          field: 0,
        });
        for (let gi = 0; gi < 3; gi++) {
          s = press(at(s, 'network', gi), net[0]!);
          s = at(s, 'display', gi);
          while ((s.draft.guests[gi]!.display?.mode ?? 'none') !== mode) s = right(s);
          s = press(at(s, 'remote', gi), ' ');
          s = { ...s, field: fieldsOf(s).findIndex((f) => f.label === 'NBD export') };
          s = press(s, ' ');
          for (const id of ['display', 'remote'])
            assert.deepEqual(
              issuesShown(at(s, id, gi)),
              [],
              `${net} network, display ${mode}, guest ${gi + 1}: ${id} shows no error before the operator types`,
            );
        }
        d = s.draft;
        // What is left to answer is asked with an empty field: the address a user-networked guest listens on.
        for (const g of d.guests)
          for (const r of [g.display, g.migration, g.nbd] as { listen?: string }[])
            if (r && 'listen' in r && r.listen === '') {
              assert.equal(net, 'user');
              r.listen = '192.0.2.10';
            }
        assert.doesNotThrow(() => validate(d), `${net} network, display ${mode}: the defaults validate`);
      }
  });

  test('every problem the schema finds is claimed by a step and labelled with the words on the screen', () => {
    const base = () =>
      fromAnswers({
        schemaVersion: 1,
        useCase: 'virtualization',
        host: { kvmGroup: 'root' },
        guests: [
          {
            name: 'web',
            cpu: { features: ['avx'] },
            firmware: { type: 'uefi', secureBoot: true },
            machine: 'pc',
            disks: [],
            network: { mode: 'tap', bridge: 'qh-db' },
            display: { mode: 'vnc-tls', listen: '127.0.0.1', port: 5900, tlsDir: '/etc/pki/shared' },
            limits: { memoryMaxMiB: 64, ioBandwidth: [{ device: '/srv/x' }] },
            migration: { enabled: true, tls: true, port: 5900 },
          },
          {
            name: 'db',
            disks: [{ path: '/home/db.img', format: 'qcow2', blockDevice: true }],
            network: { mode: 'tap' },
            display: { mode: 'vnc-tls', listen: '127.0.0.1', port: 5900, tlsDir: '/etc/pki/shared' },
            passthrough: { usb: [{ vendorId: '1234', productId: '5678', port: '1-1' }] },
          },
          { name: 'db', disks: [{ path: '/srv/db.img', format: 'raw' }] },
        ],
      });
    const d = base();
    const s0 = initialState(d, undefined, checker);
    const all = checker.issues(s0.draft);
    assert.ok(all.length >= 10, `${all.length} problems`);
    const claimed = new Map<string, string>();
    for (let step = 0; step < STEPS.length; step++)
      for (let guest = 0; guest < d.guests.length; guest++)
        if (STEPS[step]!.screen === undefined)
          for (const i of stepIssues({ ...s0, step, guest })) claimed.set(i.path, i.label);
    for (const i of all) {
      const label = claimed.get(i.path);
      assert.ok(label, `${i.path} (${i.message}) belongs to no step`);
      assert.doesNotMatch(label, /\.|^(guests|host|acceptedRisks)\b/, `${i.path} is labelled "${label}"`);
    }
    assert.equal(claimed.get('guests.0.disks'), 'Disks');
  });

  test('Enter on a step finds another guest’s problem there and shows that guest', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    s = press(s, '\u000e\u000e');
    s = enter({ ...s, guest: 0 });
    s = type(s, '/srv/one.img');
    s = enter(s);
    assert.equal(stepId(s), 'disks');
    assert.equal(s.guest, 1);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path');
    assert.equal(s.error, 'Guest 2 "guest2" needs an answer here too.');
    assert.deepEqual(issuesShown(s), ['Disk 1 path: must be an absolute path']);
  });

  test('a field still to be filled in on a later step does not hide the risks an earlier choice takes', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'usecase');
    assert.equal(s.draft.guests[0]!.disks![0]!.path, '', 'the new guest’s disk has no path yet');
    s = right(s);
    assert.deepEqual(s.draft.acceptedRisks, [{ risk: 'emulation', reason: '' }]);
    assert.equal(fieldsOf(s)[1]!.label, 'Why is that acceptable?');
  });

  test('SPICE on a unix socket and UEFI Secure Boot are offered; Secure Boot chooses its firmware build', () => {
    let s = goTo(initialState(draft(), undefined, checker), 'guests');
    s = { ...s, field: fieldsOf(s).findIndex((f) => f.label === 'Firmware') };
    s = right(s);
    const secure = fieldsOf(s).findIndex((f) => f.label === 'Secure Boot');
    assert.ok(secure > 0);
    s = press({ ...s, field: secure }, ' ');
    assert.deepEqual(s.draft.guests[0]!.firmware, {
      type: 'uefi',
      secureBoot: true,
      code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
      varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    });
    s = press(s, ' ');
    assert.deepEqual(s.draft.guests[0]!.firmware, { type: 'uefi' }, 'off again: back to the plain build');
    s = press(s, ' ');
    s = goTo(s, 'display');
    s = type(s, 's');
    assert.equal(s.draft.guests[0]!.display?.mode, 'spice-unix');
    const a = validate(goTo(s, 'review').draft);
    assert.equal(a.guests[0]!.firmware.type === 'uefi' && a.guests[0]!.firmware.secureBoot, true);
    assert.equal(a.guests[0]!.display.mode, 'spice-unix');
  });
});

describe('the review', () => {
  /** The review with its map shown, as the view reports it: 120 lines, 10 a page, guests' parts at 3, 40, 80. */
  const onMap = () => {
    let s = goTo(initialState(draft(), undefined, checker), 'review');
    s = tab(tab(s));
    s = right(right(s));
    assert.equal(s.review.tab, 'map');
    return reducer(s, { type: 'reviewLines', lines: 111, page: 10, files: 14, marks: [3, 40, 80] });
  };

  test('Tab leaves the map from anywhere in it; ↓ and ↑ scroll it', () => {
    let s = onMap();
    for (let i = 0; i < 50; i++) s = press(s, '\u001b[B');
    assert.equal(s.review.scroll, 50);
    s = tab(s);
    assert.equal(s.field, 0, 'Tab goes on to the first row, however far down the map is');
    s = tab(tab(s));
    s = press(s, '\u001b[A');
    assert.equal(s.review.scroll, 49, '↑ scrolls back');
    s = { ...s, review: { ...s.review, scroll: 0 } };
    s = press(s, '\u001b[A');
    assert.equal(s.field, 1, 'at the top, ↑ goes up to the output directory');
  });

  test('PgDn and PgUp jump from guest to guest on the map; typing a name jumps to that guest', () => {
    let s = onMap();
    s = press(s, '\u001b[6~');
    assert.equal(s.review.scroll, 3);
    s = press(s, '\u001b[6~\u001b[6~');
    assert.equal(s.review.scroll, 80);
    s = press(s, '\u001b[6~');
    assert.equal(s.review.scroll, 80, 'the last guest stays');
    s = press(s, '\u001b[5~');
    assert.equal(s.review.scroll, 40);
    s = {
      ...s,
      draft: { ...s.draft, guests: ['alpha', 'beta', 'bravo'].map((name) => ({ ...s.draft.guests[0]!, name })) },
    };
    s = type(s, 'b');
    assert.equal(s.review.scroll, 80, 'the next guest whose name starts with b');
    s = type(s, 'b');
    assert.equal(s.review.scroll, 40, 'and round again');
    s = type(s, 'z');
    assert.match(s.notice!, /No guest's name starts with "z"/);
  });

  test('the footer names the keys the map takes, from the key table', async () => {
    const { commandsOf } = await import('../src/ui/state.js');
    const { footerOf } = await import('../src/ui/keys.js');
    const s = onMap();
    const { commands, labels } = commandsOf(s);
    assert.equal(
      footerOf(commands, labels),
      'Enter do it · Esc back · Tab row · ↓/↑ line · ←/→ files/risks/map · PgUp/PgDn guest · F1/^G why · ^C quit',
    );
  });
});
