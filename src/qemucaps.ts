// What a QEMU binary itself says it can emulate: its machine types (`-machine help`) and CPU models
// (`-cpu help`). The wizard offers only those, and `verify` checks a bundle's guests against them.
import { existsSync } from 'node:fs';
import * as G from './guest.js';
import type { Answers } from './model.js';
import { run, runSync } from './tools.js';
import { plural } from './words.js';

export interface QemuCaps {
  machines: string[];
  cpuModels: string[];
}

/** `-machine help`: "Supported machines are:" then one "name  description" line each. */
export function parseMachines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^\S/.test(l) && !/^Supported machines/i.test(l))
    .map((l) => l.split(/\s+/)[0]!)
    .filter((m) => /^[a-z0-9][a-z0-9._-]*$/.test(m));
}

/** `-cpu help`: "Available CPUs:" then one model a line (x86 prefixes "x86 "), until the CPUID flags. */
export function parseCpuModels(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (/^Recognized CPUID flags|^Available CPUs/i.test(line.trim())) {
      if (/^Recognized/i.test(line.trim())) break;
      continue;
    }
    const words = line.trim().split(/\s+/);
    const name = words[0] === 'x86' || words[0] === 's390x' || words[0] === 'PowerPC' ? words[1] : words[0];
    if (name && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !out.includes(name)) out.push(name);
  }
  return out;
}

export async function qemuCaps(binary: string): Promise<QemuCaps | undefined> {
  const [m, c] = await Promise.all([
    run(binary, ['-machine', 'help'], { timeoutMs: 5000 }),
    run(binary, ['-cpu', 'help'], { timeoutMs: 5000 }),
  ]);
  if (m.exitCode !== 0 || c.exitCode !== 0) return undefined;
  return { machines: parseMachines(m.stdout), cpuModels: parseCpuModels(c.stdout) };
}

/**
 * Each guest's machine type and CPU model against the bundle's own QEMU binary, where that binary is here:
 * a name the binary does not know makes the unit fail at start. Undefined when the binary is not on this host.
 */
export async function checkQemuCaps(
  a: Answers,
): Promise<{ findings: { path: string; message: string }[]; detail: string } | undefined> {
  const bin = a.host.qemuBinary;
  if (!existsSync(bin)) return undefined;
  const caps = await qemuCaps(bin);
  if (!caps)
    return { findings: [{ path: 'host.qemuBinary', message: `${bin} -machine help / -cpu help failed` }], detail: bin };
  const findings: { path: string; message: string }[] = [];
  const name = bin.split('/').pop();
  a.guests.forEach((g, gi) => {
    if (!caps.machines.includes(g.machine))
      findings.push({
        path: `guests.${gi}.machine`,
        message: `"${g.machine}" is not a machine type of ${bin} (see ${name} -machine help)`,
      });
    const cpu = G.cpuModel(a, g);
    if (!caps.cpuModels.includes(cpu))
      findings.push({
        path: `guests.${gi}.cpu.model`,
        message: `"${cpu}" is not a CPU model of ${bin} (see ${name} -cpu help)`,
      });
  });
  return { findings, detail: `${plural(a.guests.length, 'guest')} against ${bin}` };
}

const cpuModelsCache = new Map<string, string[] | undefined>();

/** The CPU models a QEMU binary on this host knows (`-cpu help`), or undefined where it is not here. */
export function cpuModelsSync(binary: string): string[] | undefined {
  if (!cpuModelsCache.has(binary)) {
    const r = existsSync(binary) ? runSync(binary, ['-cpu', 'help']) : undefined;
    cpuModelsCache.set(binary, r && r.exitCode === 0 ? parseCpuModels(r.stdout) : undefined);
  }
  return cpuModelsCache.get(binary);
}
