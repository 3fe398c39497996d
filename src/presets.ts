// Presets: answers documents shipped in presets/, each with a one-line description.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from './errors.js';

export interface Preset {
  name: string;
  description: string;
  answers: unknown;
}

/** presets/ sits one level above both src/ (running from source) and dist/ (the built binary). */
export const PRESETS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'presets');

export function listPresets(dir = PRESETS_DIR): Preset[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const doc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { description: string; answers: unknown };
      return { name: f.slice(0, -'.json'.length), description: doc.description, answers: doc.answers };
    });
}

export function loadPreset(name: string, dir = PRESETS_DIR): Preset {
  const all = listPresets(dir);
  const p = all.find((x) => x.name === name);
  if (!p) throw new InputError(`--preset: no preset named "${name}" (available: ${all.map((x) => x.name).join(', ')})`);
  return p;
}
