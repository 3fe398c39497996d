import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STEPS } from '../steps/index.js';
import { validate } from '../src/answers.js';
import { loadPreset } from '../src/sources/preset.js';
import { fromAnswers, initialDraft, newGuest } from '../src/ui/draft.js';
import { checker } from '../src/ui/engine.js';
import { DONE, fieldsOf, initialState, reducer, resolveKey, REVIEW, stepIssues, typeInto, type KeyInfo, type State } from '../src/ui/state.js';

const press = (s: State, input: string, key: KeyInfo = {}) => reducer(s, { type: 'key', input, key });
const enter = (s: State) => press(s, '', { return: true });
const esc = (s: State) => press(s, '', { escape: true });
const tab = (s: State) => press(s, '', { tab: true });
const right = (s: State) => press(s, '', { rightArrow: true });
const type = (s: State, text: string) => press(s, text);
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
  test('named commands; ? and space are typed inside text fields', () => {
    assert.equal(resolveKey('', { return: true }, false), 'next');
    assert.equal(resolveKey('', { escape: true }, false), 'back');
    assert.equal(resolveKey('', { tab: true, shift: true }, false), 'back');
    assert.equal(resolveKey('', { tab: true }, false), 'fieldNext');
    assert.equal(resolveKey('c', { ctrl: true }, true), 'quit');
    assert.equal(resolveKey('?', {}, false), 'help');
    assert.equal(resolveKey('?', {}, true), 'char');
    assert.equal(resolveKey(' ', {}, true), 'char');
    assert.equal(typeInto('abc', 'x\u007f\u007fyz'), 'abyz');
  });
});

describe('wizard reducer', () => {
  test('the steps, in order, end in review and done', () => {
    assert.deepEqual(STEPS.map((s) => s.id), ['host', 'usecase', 'guests', 'disks', 'network', 'display', 'passthrough', 'remote', 'limits', 'isolation', 'review', 'done']);
  });

  test('an invalid value blocks Enter with the message generate gives; fixing it lets the interview go on', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    s = tab(s);
    s = type(s, 'x');
    const issues = stepIssues(s);
    assert.deepEqual(issues, [{ path: 'guests.0.vcpus', message: 'expected number, received string' }]);
    const blocked = enter(s);
    assert.equal(stepId(blocked), 'guests');
    assert.match(blocked.error!, /Fix the marked fields/);
    s = press(s, '\u007f', { backspace: true });
    s = press(s, '\u007f', { backspace: true });
    s = type(s, '4');
    assert.equal(s.draft.guests[0]!.vcpus, 4);
    assert.equal(stepId(enter(s)), 'disks');
  });

  test('Esc goes back without losing answers', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'guests');
    for (let i = 0; i < 6; i++) s = press(s, '\u007f', { backspace: true });
    s = type(s, 'web');
    s = enter(s);
    s = esc(esc(s));
    assert.equal(stepId(s), 'usecase');
    s = enter(s);
    assert.equal(s.draft.guests[0]!.name, 'web');
  });

  test('choosing emulation asks for a reason, which becomes the accepted risk', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'usecase');
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
    s = press(s, '', { leftArrow: true });
    assert.deepEqual(s.draft.acceptedRisks, [], 'back to KVM: the acceptance goes away');
  });

  test('relaxing the sandbox needs a typed reason on the isolation step', () => {
    let s = goTo(initialState(initialDraft(), undefined, checker), 'isolation');
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
    s = press(s, 'n', { ctrl: true });
    assert.equal(s.draft.guests.length, 2);
    assert.equal(s.guest, 1);
    s = press(s, 'd', { ctrl: true });
    assert.equal(s.draft.guests.length, 1);
    s = enter(s);
    s = press(s, 'n', { ctrl: true });
    assert.equal((s.draft.guests[0]!.disks as unknown[]).length, 1);
    assert.equal(fieldsOf(s)[s.field]!.label, 'Disk 1 path');
    assert.equal(stepId(enter(s)), 'disks', 'a disk without a path blocks the step');
    s = type(s, '/srv/a.img');
    assert.equal(stepId(enter(s)), 'network');
  });

  test('before the schema has loaded nothing advances; once it has, the draft’s risks are synced', () => {
    const e = validate({ schemaVersion: 1, useCase: 'emulation', guests: [{ name: 'a' }], acceptedRisks: [{ risk: 'emulation', reason: 'x'.repeat(12) }] });
    let s = initialState(fromAnswers({ ...e, acceptedRisks: [] }));
    assert.equal(s.check, undefined);
    assert.deepEqual(stepIssues(s), [], 'no schema, no findings');
    assert.equal(enter(s).step, 0, 'Enter waits for the schema');
    s = reducer(s, { type: 'ready', check: checker });
    assert.deepEqual(s.draft.acceptedRisks, [{ risk: 'emulation', reason: '' }], 'the emulation risk now needs a reason');
    assert.equal(enter(s).step, 1);
  });

  test('Ctrl+C asks first; y exits 130, n goes on', () => {
    let s = press(initialState(initialDraft(), undefined, checker), 'c', { ctrl: true });
    assert.equal(s.quitting, true);
    assert.equal(press(s, 'n').quitting, false);
    s = press(s, 'y');
    assert.equal(s.exit, 130);
  });

  test('review writes only on Enter, and done exits 0', () => {
    let s = goTo(initialState(initialDraft(), '/tmp/x', checker), 'review');
    assert.equal(s.step, REVIEW);
    s = enter(s);
    assert.equal(s.pending, 'write');
    s = reducer(s, { type: 'written', kind: 'bundle', path: '/tmp/x' });
    assert.equal(s.step, DONE);
    assert.equal(enter(s).exit, 0);
  });

  test('--answers prefills every step: a preset goes straight through to review unchanged', () => {
    const preset = loadPreset('multi-tenant').answers;
    const s = goTo(initialState(fromAnswers(preset), undefined, checker), 'review');
    assert.deepEqual(validate(s.draft), validate(preset));
  });

  test('a new guest is sized from the host; disk throttling is set on the limits step', () => {
    assert.deepEqual([newGuest(2, { cpus: 8, memoryMiB: 4096 }).vcpus, newGuest(2, { cpus: 8, memoryMiB: 4096 }).memoryMiB], [2, 1024]);
    assert.deepEqual([newGuest(2, { cpus: 1, memoryMiB: 512 }).vcpus, newGuest(2, { cpus: 1, memoryMiB: 512 }).memoryMiB], [1, 256]);
    let s = goTo(initialState(initialDraft(), undefined, checker), 'disks');
    s = type(press(s, 'n', { ctrl: true }), '/srv/t.img');
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
    for (let i = 0; i < '/srv/initrd.img'.length; i++) s = press(s, '\u007f', { backspace: true });
    s = press(s, '', { upArrow: true });
    for (let i = 0; i < '/srv/vmlinuz'.length; i++) s = press(s, '\u007f', { backspace: true });
    assert.equal(s.draft.guests[0]!.boot, undefined, 'emptied: no boot object left behind');
  });
});
