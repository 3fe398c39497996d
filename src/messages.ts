// Plain words for every problem the answers schema can find, instead of the validator's own text ("expected
// number, received string"). One error map, used by `generate`, `verify` and the wizard alike; a message a
// field's schema gives itself ("must be an absolute path") takes precedence over these.
import type { z } from 'zod';
import { plural } from './words.js';

const NOUN: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'text',
  boolean: 'true or false',
  object: 'a group of settings (an object)',
  array: 'a list',
};

const noun = (expected: string) => NOUN[expected] ?? expected;

function describe(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'string')
    return `the text ${JSON.stringify(input.length > 40 ? `${input.slice(0, 37)}...` : input)}`;
  if (typeof input === 'number') return Number.isInteger(input) ? `the number ${input}` : `the fraction ${input}`;
  if (typeof input === 'boolean') return String(input);
  if (typeof input === 'object') return 'a group of settings';
  return typeof input;
}

const quoteAll = (values: readonly unknown[]) => values.map((v) => JSON.stringify(v)).join(', ');

function bound(
  origin: string,
  which: 'least' | 'most',
  limit: number | bigint,
  inclusive: boolean | undefined,
): string {
  const n = Number(limit);
  if (origin === 'string') {
    if (which === 'least' && n === 1) return 'must not be empty';
    return `must be at ${which} ${plural(n, 'character')} long`;
  }
  if (origin === 'array' || origin === 'set') {
    if (which === 'least' && n === 1) return 'must list at least one entry';
    return `must list at ${which} ${plural(n, 'entry', 'entries')}`;
  }
  if (inclusive === false) return which === 'least' ? `must be more than ${n}` : `must be less than ${n}`;
  return `must be at ${which} ${n}`;
}

/** The error map: a plain-words message for each kind of problem zod reports. */
export function plainError(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type': {
      // z.int() reports "number" for a string; its schema's format says it wants a whole one.
      const format = (issue.inst as { _zod?: { def?: { format?: string } } } | undefined)?._zod?.def?.format;
      const expected = issue.expected === 'number' && /int/.test(format ?? '') ? 'int' : issue.expected;
      if (issue.input === undefined) return `is required: ${noun(expected)}`;
      return `must be ${noun(expected)}, not ${describe(issue.input)}`;
    }
    case 'too_small':
      return bound(issue.origin, 'least', issue.minimum, issue.inclusive);
    case 'too_big':
      return bound(issue.origin, 'most', issue.maximum, issue.inclusive);
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${quoteAll(issue.values)}`
        : `must be one of ${quoteAll(issue.values)}`;
    case 'invalid_format':
      return issue.format === 'regex'
        ? 'is not in the expected form'
        : `must be a valid ${issue.format === 'ipv4' ? 'IPv4 address' : issue.format === 'ipv6' ? 'IPv6 address' : issue.format}`;
    case 'invalid_union': {
      const d = issue as unknown as { discriminator?: string; options?: unknown[] };
      if (d.discriminator && d.options) return `must be one of ${quoteAll(d.options)}`;
      return 'matches none of the forms this setting accepts';
    }
    case 'not_multiple_of':
      return `must be a multiple of ${Number(issue.divisor)}`;
    case 'unrecognized_keys':
      return `unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${quoteAll(issue.keys)}`;
    case 'invalid_key':
      return 'has a key that is not allowed';
    default:
      return 'is not valid';
  }
}
