// What a QEMU binary itself says it can emulate: its machine types (`-machine help`) and CPU models
// (`-cpu help`). The wizard offers only those, and `verify` checks a bundle's guests against them.
import { run } from './tools.js';

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
