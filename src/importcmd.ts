// `qemu-harden import KIND FILE...`: guests described elsewhere become one answers file. The source records
// (src/sources/index.ts) decide what is carried, changed to the secure default, left for a person's reason or
// refused; this module reads the inputs and the source's host file, hands the sources what this host knows (its
// QEMU's CPU models, its IOMMU groups, its own storage), runs the program that lists running guests, writes the
// answers file atomically (complete or not at all) and prints the report.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeFileAtomicAt } from './atomic.js';
import { InputError } from './errors.js';
import { DEFAULT_QEMU_BINARY } from './model.js';
import { cpuModelsSync } from './qemucaps.js';
import {
  MAX_SOURCE_BYTES,
  readBounded,
  type ImportHost,
  type ImportSource,
  type SourceInput,
} from './sources/common.js';
import { IMPORT_SOURCES } from './sources/index.js';
import { exitStatus, renderReport } from './sources/report.js';
import { hostStorageOn } from './target.js';
import { run, which } from './tools.js';

export interface ImportArgs {
  kind: string | undefined;
  files: string[];
  /** The options that belong to one source (--qemu-conf FILE, --storage-cfg FILE, --running). */
  sourceFlags: ReadonlyMap<string, string | true>;
  out?: string;
  force: boolean;
  json: boolean;
}

/** Every option some source takes, for the command line to accept before the source is known. */
export const SOURCE_FLAGS = [
  ...new Set(IMPORT_SOURCES.flatMap((s) => [s.config.flag, ...(s.running ? [s.running.flag] : [])])),
];

/** At most this many guests in one run: the answers schema's own limit. */
const MAX_INPUTS = 4096;

/** The IOMMU group of a PCI device, read from sysfs: the link /sys/bus/pci/devices/ADDR/iommu_group. */
function iommuGroupIn(sysfsPci: string, address: string): number | undefined {
  try {
    const m = /\/(\d+)$/.exec(realpathSync(`${sysfsPci}/${address}/iommu_group`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What this machine knows of the guests it imports: the sources ask, and never look themselves. `sysfsPci` is
 * where the PCI devices' IOMMU groups are read (a test lays out a tree of its own there).
 */
export function thisHost(opts: { sysfsPci?: string } = {}): ImportHost {
  const qemuBinary = DEFAULT_QEMU_BINARY;
  return {
    qemuBinary,
    knowsCpuModel: (model) => cpuModelsSync(qemuBinary)?.includes(model),
    iommuGroup: (address) => iommuGroupIn(opts.sysfsPci ?? '/sys/bus/pci/devices', address),
    storageOn: hostStorageOn,
  };
}

const usage = (me: string) => IMPORT_SOURCES.map((s) => `${me} import ${s.kind} ${s.inputs}`).join('  or  ');

/** `me` is how the operator runs qemu-harden here (src/invocation.ts): the report's next command is written with it. */
export async function importCommand(
  a: ImportArgs,
  io: { out: (s: string) => void },
  me = 'qemu-harden',
): Promise<number> {
  const source = IMPORT_SOURCES.find((s) => s.kind === a.kind);
  if (!source)
    throw new InputError(`import needs the kind of source first: ${usage(me)}${a.kind ? ` (not "${a.kind}")` : ''}`);
  for (const flag of a.sourceFlags.keys())
    if (flag !== source.config.flag && flag !== source.running?.flag) {
      const owner = IMPORT_SOURCES.find((s) => s.config.flag === flag || s.running?.flag === flag);
      throw new InputError(`${flag} applies to 'import ${owner?.kind ?? '?'}' only`);
    }
  const running = source.running && a.sourceFlags.has(source.running.flag) ? source.running : undefined;
  if (running && a.files.length)
    throw new InputError(
      `import ${source.kind} ${running.flag} reads the ${running.what} from ${running.tool}; give no files with it`,
    );
  if (!running && a.files.length === 0)
    throw new InputError(
      `import ${source.kind} needs at least one file${source.running ? ` (or ${source.running.flag})` : ''}`,
    );
  if (a.files.length > MAX_INPUTS) throw new InputError(`import takes at most ${MAX_INPUTS} files at once`);
  if (a.out) checkOut(a.out, a.force);

  const named = a.sourceFlags.get(source.config.flag);
  const configFile =
    typeof named === 'string' ? named : existsSync(source.config.path) ? source.config.path : undefined;
  const config = configFile ? { file: configFile, text: readBounded(configFile, source.config.what) } : undefined;
  const inputs: SourceInput[] = running
    ? await runningInputs(source.kind, running)
    : a.files.map((file) => ({ file, read: () => readBounded(file, source.input) }));
  const { document, report } = source.import(inputs, config, thisHost());
  if (a.out && document !== null) {
    writeAtomically(a.out, JSON.stringify(document, null, 2) + '\n');
    report.out = a.out;
    report.written = true;
  }
  io.out(a.json ? JSON.stringify(report, null, 2) + '\n' : renderReport(report, me));
  return exitStatus(report.outcome);
}

function checkOut(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isFile()) throw new InputError(`--out: ${out} exists and is not a regular file`);
  if (!force) throw new InputError(`--out: ${out} exists; pass --force to replace it`);
}

/** Write next to the destination, flush, rename: a reader sees the old file or the complete new one. */
function writeAtomically(out: string, content: string): void {
  try {
    writeFileAtomicAt(resolve(out), content, 0o644);
  } catch (e) {
    throw new InputError(`--out: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Every running guest, listed and dumped by the source's own program (libvirt: virsh list, virsh dumpxml). */
async function runningInputs(kind: string, r: NonNullable<ImportSource['running']>): Promise<SourceInput[]> {
  const tool = which(r.tool);
  if (!tool)
    throw new InputError(
      `import ${kind} ${r.flag} needs ${r.tool}, which is not installed (Debian package ${r.debianPackage})`,
    );
  const list = await run(tool, r.list);
  if (list.exitCode !== 0)
    throw new InputError(
      `${r.tool} ${r.list.join(' ')} failed (exit ${list.exitCode}): ${list.stderr.trim().split('\n')[0] ?? ''}`,
    );
  const names = list.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InputError(`${r.tool} lists no running ${r.what}`);
  if (names.length > MAX_INPUTS)
    throw new InputError(`${r.tool} lists ${names.length} ${r.what}; import takes at most ${MAX_INPUTS}`);
  const out: SourceInput[] = [];
  for (const name of names) {
    const args = r.dump(name);
    const dumped = await run(tool, args);
    const file = `${r.tool} ${args.filter((x) => x !== '--').join(' ')}`;
    out.push({
      file,
      read: () => {
        if (dumped.exitCode !== 0)
          throw new InputError(
            `${file}: failed (exit ${dumped.exitCode}): ${dumped.stderr.trim().split('\n')[0] ?? ''}`,
          );
        if (Buffer.byteLength(dumped.stdout) > MAX_SOURCE_BYTES)
          throw new InputError(`${file}: larger than ${MAX_SOURCE_BYTES} bytes`);
        return dumped.stdout;
      },
    });
  }
  return out;
}
