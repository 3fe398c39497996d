// An answers source: the presets shipped in presets/, each an answers document with a one-line description.
// Returns the untyped document; the one schema (src/answers.ts) validates it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';

export interface Preset {
  name: string;
  description: string;
  /** What the operator must know or do beyond the answers (drivers a guest needs, files to put in place). */
  notes: string[];
  answers: unknown;
}

/**
 * presets/ sits next to package.json: two levels above this file when running from source (src/sources/), one
 * level above the built binary's chunks (dist/).
 */
function presetsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'presets'), join(here, '..', '..', 'presets')];
  return candidates.find((d) => existsSync(d)) ?? candidates[0]!;
}

const PRESETS_DIR = presetsDir();

export function listPresets(dir = PRESETS_DIR): Preset[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const doc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        description: string;
        notes?: string[];
        answers: unknown;
      };
      return {
        name: f.slice(0, -'.json'.length),
        description: doc.description,
        notes: doc.notes ?? [],
        answers: doc.answers,
      };
    });
}

export function loadPreset(name: string, dir = PRESETS_DIR): Preset {
  const all = listPresets(dir);
  const p = all.find((x) => x.name === name);
  if (!p) throw new InputError(`--preset: no preset named "${name}" (available: ${all.map((x) => x.name).join(', ')})`);
  return p;
}
