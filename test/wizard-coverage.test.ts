// The interview asks for everything the answers can hold: every field of the answers schema is asked by some step
// (found by walking the interview itself, choice by choice) or listed in steps/index.ts's NOT_ASKED with a reason.
// A field added to the model fails here until a step asks for it or NOT_ASKED says why not.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { answersObject } from '../src/model.js';
import type { HostFacts } from '../src/probe.js';
import { checker } from '../src/ui/engine.js';
import { fromAnswers, getIn, initialDraft, syncRisks, type Draft } from '../steps/draft.js';
import { applyValue, typed, type Field, type Path } from '../steps/fields.js';
import { NOT_ASKED, STEPS } from '../steps/index.js';
import { loadPreset } from '../src/sources/preset.js';

// A tuple is one value (an SELinux category pair), asked or not as a whole.
const LEAF_TYPES = new Set(['string', 'number', 'boolean', 'literal', 'enum', 'tuple']);
const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

/** Every field of a zod schema as a dotted path, `*` for any entry of a list; a variant's fields are all included. */
function schemaFields(schema: z.ZodType, path: string[] = []): string[] {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  if (def.type === 'object')
    return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([k, v]) => schemaFields(v, [...path, k]));
  if (def.type === 'array') return schemaFields(def.element as z.ZodType, [...path, '*']);
  if (WRAPPERS.has(def.type)) return schemaFields(def.innerType as z.ZodType, path);
  if (def.type === 'union') return [...new Set((def.options as z.ZodType[]).flatMap((o) => schemaFields(o, path)))];
  if (def.type === 'pipe') return schemaFields(def.in as z.ZodType, path);
  if (LEAF_TYPES.has(def.type)) return [path.join('.')];
  throw new Error(`${path.join('.')}: the walk does not know zod's "${def.type}" yet; teach it here`);
}

const normal = (p: Path) => p.map((k) => (typeof k === 'number' ? '*' : k)).join('.');

/** A host with one device of each kind to pass through, so that the passthrough step has something to offer. */
const HOST = {
  qemu: { binary: '/usr/bin/qemu-system-x86_64', machines: [], cpuModels: [] },
  pci: [{ address: '0000:01:00.0', iommuGroup: 7, groupMates: [], description: 'NIC' }],
  usb: [{ vendorId: '1234', productId: '5678', description: 'token' }],
  iommuGroups: 1,
  vhostNet: true,
} as unknown as HostFacts;

const FORMS = STEPS.filter((s) => s.screen === undefined);

/**
 * The interview walked choice by choice from a few drafts: every choice's every option, both sides of every
 * yes/no and every add, for as long as a step shows a set of fields it has not shown before. Each field met,
 * and the draft it was met in.
 */
function walkInterview(starts: Draft[]): { field: Field; draft: Draft }[] {
  const met: { field: Field; draft: Draft }[] = [];
  const seen = new Set<string>();
  const queue = [...starts];
  while (queue.length > 0) {
    const d = syncRisks(queue.shift()!, checker);
    const ctx = { draft: d, guest: 0, host: HOST, check: checker };
    for (const step of FORMS) {
      const fields = step.fields(ctx);
      // A step whose fields have all been shown before (a second disk shows what the first did) is not walked
      // again: each step's choices are walked once per set of fields it shows, whatever the other steps show.
      const key = `${step.id}\n${[...new Set(fields.map((f) => normal(f.path)))].sort().join('\n')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      assert.ok(seen.size < 500, 'the walk ends');
      for (const field of fields) {
        met.push({ field, draft: d });
        if (field.inactive?.(d)) continue;
        const values =
          field.kind === 'toggle' ? [true, false] : field.kind === 'select' ? field.options!.map((o) => o.value) : [];
        for (const v of values) queue.push(applyValue(d, field, v));
      }
      if (step.add) queue.push(step.add(ctx));
    }
  }
  return met;
}

const STARTS = () => [
  initialDraft(),
  fromAnswers({ ...initialDraft(), useCase: 'emulation' }),
  ...(['kvm-tap', 'desktop-vnc', 'multi-tenant', 'tcg-build-runner'] as const).map((p) =>
    fromAnswers(loadPreset(p).answers),
  ),
];

/** The answers fields the interview asks for: its fields' own paths, and what a field says it fills. */
function asked(met: { field: Field; draft: Draft }[]): Set<string> {
  const out = new Set<string>();
  for (const { field } of met) {
    if (typeof field.path[0] === 'string' && !field.path[0].startsWith('$')) out.add(normal(field.path));
    for (const w of field.writes ?? []) out.add(normal(w));
  }
  return out;
}

/** Schema fields no step asks for and NOT_ASKED does not list. */
function unasked(fields: string[], askedPaths: Set<string>): string[] {
  return fields.filter((f) => !askedPaths.has(f) && !askedPaths.has(f.replace(/\.\*$/, '')) && !(f in NOT_ASKED));
}

describe('the interview asks for everything the answers can hold', () => {
  const fields = schemaFields(answersObject);
  const met = walkInterview(STARTS());
  const askedPaths = asked(met);

  test('every field of the answers schema is asked by a step or listed as not asked, with the reason', () => {
    assert.ok(fields.length > 60, `${fields.length} fields in the schema`);
    assert.deepEqual(
      unasked(fields, askedPaths),
      [],
      'fields of the model no step asks for (add a step, or NOT_ASKED)',
    );
  });

  test('NOT_ASKED lists only fields the schema has and no step asks for, each with a reason', () => {
    for (const [path, why] of Object.entries(NOT_ASKED)) {
      assert.ok(fields.includes(path), `${path} is not a field of the schema`);
      assert.ok(!askedPaths.has(path), `${path} is asked by a step: drop it from NOT_ASKED`);
      assert.ok(why.length >= 20, `${path}: say why it is not asked`);
    }
  });

  test('what a step says it asks is what it writes: its path (or what it fills) changes when its value does', () => {
    const schema = new Set(fields.map((f) => f.replace(/\.\*$/, '')).concat(fields));
    let checked = 0;
    for (const { field, draft } of met) {
      if (field.inactive?.(draft)) continue;
      const schemaPath = typeof field.path[0] === 'string' && !field.path[0].startsWith('$');
      if (schemaPath)
        assert.ok(schema.has(normal(field.path)), `${field.label}: ${normal(field.path)} is not in the schema`);
      const values =
        field.kind === 'toggle'
          ? [true, false]
          : field.kind === 'select'
            ? field.options!.map((o) => o.value)
            : [typed(field, field.kind === 'number' ? '4097' : '/srv/x y')];
      const after = values.map((v) => applyValue(draft, field, v));
      for (const p of schemaPath ? [field.path] : (field.writes ?? [])) {
        const before = JSON.stringify(getIn(draft, p));
        assert.ok(
          after.some((a) => JSON.stringify(getIn(a, p)) !== before),
          `${field.label}: setting it never changes ${p.join('.')}`,
        );
        checked++;
      }
    }
    assert.ok(checked > 100, `${checked} fields checked`);
  });

  test('a field the model gains and no step asks for is caught', () => {
    const grown = answersObject.extend({
      host: answersObject.shape.host.unwrap().extend({ tpmBackend: z.enum(['swtpm']).optional() }),
    });
    assert.deepEqual(unasked(schemaFields(grown), askedPaths), ['host.tpmBackend']);
  });
});
