// Every plain-words message of the one error map, as `generate` and the wizard print it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { issuesFor, validate } from '../src/answers.js';
import { plainError } from '../src/messages.js';

const message = (schema: z.ZodType, input: unknown) => {
  const r = schema.safeParse(input, { error: plainError });
  assert.equal(r.success, false);
  return r.error!.issues[0]!.message;
};

describe('plain-words messages', () => {
  test('a missing value says it is required and what kind', () => {
    assert.equal(message(z.strictObject({ a: z.string() }), {}), 'is required: text');
    assert.equal(message(z.strictObject({ a: z.int() }), {}), 'is required: a whole number');
  });
  test('a value of the wrong kind says what it should be and what it is', () => {
    assert.equal(message(z.int(), 'x'), 'must be a whole number, not the text "x"');
    assert.equal(message(z.number(), 'x'), 'must be a number, not the text "x"');
    assert.equal(message(z.int(), 1.5), 'must be a whole number, not the fraction 1.5');
    assert.equal(message(z.boolean(), 'yes'), 'must be true or false, not the text "yes"');
    assert.equal(message(z.array(z.int()), { a: 1 }), 'must be a list, not a group of settings');
    assert.equal(message(z.strictObject({}), 3), 'must be a group of settings (an object), not the number 3');
    assert.equal(message(z.string(), null), 'must be text, not null');
    assert.equal(message(z.string(), [1]), 'must be text, not a list');
    assert.equal(message(z.string(), true), 'must be text, not true');
    assert.match(message(z.int(), 'y'.repeat(50)), /not the text "y{37}\.\.\."$/);
  });
  test('bounds, in the unit of what is bounded', () => {
    assert.equal(message(z.int().min(1), 0), 'must be at least 1');
    assert.equal(message(z.int().max(10), 11), 'must be at most 10');
    assert.equal(message(z.int().positive(), 0), 'must be more than 0');
    assert.equal(message(z.number().lt(5), 5), 'must be less than 5');
    assert.equal(message(z.string().min(1), ''), 'must not be empty');
    assert.equal(message(z.string().min(3), 'ab'), 'must be at least 3 characters long');
    assert.equal(message(z.string().max(1), 'ab'), 'must be at most 1 character long');
    assert.equal(message(z.array(z.int()).min(1), []), 'must list at least one entry');
    assert.equal(message(z.array(z.int()).max(2), [1, 2, 3]), 'must list at most 2 entries');
    assert.equal(message(z.array(z.int()).max(1), [1, 2]), 'must list at most 1 entry');
  });
  test('choices, forms and keys', () => {
    assert.equal(message(z.enum(['a', 'b']), 'c'), 'must be one of "a", "b"');
    assert.equal(message(z.literal(1), 2), 'must be 1');
    assert.equal(message(z.ipv4(), '1.2'), 'must be a valid IPv4 address');
    assert.equal(message(z.ipv6(), 'x'), 'must be a valid IPv6 address');
    assert.equal(message(z.email(), 'x'), 'must be a valid email');
    assert.equal(message(z.string().regex(/^a$/), 'b'), 'is not in the expected form');
    assert.equal(message(z.union([z.int(), z.boolean()]), 'x'), 'matches none of the forms this setting accepts');
    assert.equal(message(z.number().multipleOf(4), 3), 'must be a multiple of 4');
    assert.equal(message(z.strictObject({}), { x: 1 }), 'unknown key "x"');
    assert.equal(message(z.strictObject({}), { x: 1, y: 2 }), 'unknown keys "x", "y"');
    assert.equal(message(z.record(z.string().min(2), z.int()), { b: 1 }), 'has a key that is not allowed');
    const u = z.discriminatedUnion('mode', [
      z.strictObject({ mode: z.literal('a') }),
      z.strictObject({ mode: z.literal('b') }),
    ]);
    assert.equal(message(u, { mode: 'c' }), 'must be one of "a", "b"');
    assert.equal(
      message(
        z.string().refine(() => false),
        'x',
      ),
      'is not valid',
    );
  });
  test('generate and the wizard give the same words for the same answers', () => {
    const doc = {
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [
        { name: 'a', vcpus: 'two', disks: [{ path: '/srv/a.img', format: 'vmdk' }], network: { mode: 'bridge' } },
      ],
    };
    const wizard = issuesFor(doc).map((i) => `${i.path}: ${i.message}`);
    assert.throws(
      () => validate(doc),
      (e: Error) => {
        assert.deepEqual(e.message.split('\n'), wizard);
        return true;
      },
    );
    assert.deepEqual(wizard, [
      'guests.0.vcpus: must be a whole number, not the text "two"',
      'guests.0.disks.0.format: must be "qcow2" or "raw" (the format is never probed)',
      'guests.0.network.mode: must be one of "none", "user", "tap"',
    ]);
    for (const m of wizard) assert.doesNotMatch(m, /expected|received|Invalid/);
  });
});
