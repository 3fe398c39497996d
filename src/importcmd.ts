// `qemu-harden import libvirt|proxmox`: guests described elsewhere become one answers file. The sources decide
// what is carried, changed to the secure default or refused; this module reads the inputs, writes the answers
// file atomically (complete or not at all) and prints the report.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from './errors.js';
import { MAX_SOURCE_BYTES, readBounded } from './sources/common.js';
import { fromLibvirt, parseQemuConf, type LibvirtOptions } from './sources/libvirt.js';
import { fromProxmox, parseStorageCfg } from './sources/proxmox.js';
import { exitStatus, renderReport, type ImportReport } from './sources/report.js';
import { run, which } from './tools.js';

export interface ImportArgs {
  kind: string | undefined;
  files: string[];
  qemuConf?: string;
  storageCfg?: string;
  running: boolean;
  out?: string;
  force: boolean;
  json: boolean;
}

/** Read when present and no other file is named: where libvirt and Proxmox keep them on their hosts. */
export const DEFAULT_QEMU_CONF = '/etc/libvirt/qemu.conf';
export const DEFAULT_STORAGE_CFG = '/etc/pve/storage.cfg';

/** At most this many guests in one run: the answers schema's own limit. */
const MAX_INPUTS = 4096;

/** `me` is how the operator runs qemu-harden here (src/invocation.ts): the report's next command is written with it. */
export async function importCommand(
  a: ImportArgs,
  io: { out: (s: string) => void },
  me = 'qemu-harden',
): Promise<number> {
  if (a.kind !== 'libvirt' && a.kind !== 'proxmox')
    throw new InputError(
      `import needs the kind of source first: ${me} import libvirt DOMAIN.xml...  or  ${me} import proxmox VMID.conf...${a.kind ? ` (not "${a.kind}")` : ''}`,
    );
  if (a.kind === 'proxmox' && (a.qemuConf || a.running))
    throw new InputError(`${a.qemuConf ? '--qemu-conf' : '--running'} applies to 'import libvirt' only`);
  if (a.kind === 'libvirt' && a.storageCfg) throw new InputError("--storage-cfg applies to 'import proxmox' only");
  if (a.running && a.files.length)
    throw new InputError('import libvirt --running reads the domains from virsh; give no files with it');
  if (!a.running && a.files.length === 0)
    throw new InputError(`import ${a.kind} needs at least one file${a.kind === 'libvirt' ? ' (or --running)' : ''}`);
  if (a.files.length > MAX_INPUTS) throw new InputError(`import takes at most ${MAX_INPUTS} files at once`);
  if (a.out) checkOut(a.out, a.force);

  let result: { document: unknown; report: ImportReport };
  if (a.kind === 'libvirt') {
    const opts: LibvirtOptions = {};
    const qemuConf = a.qemuConf ?? (existsSync(DEFAULT_QEMU_CONF) ? DEFAULT_QEMU_CONF : undefined);
    if (qemuConf) {
      opts.qemuConf = parseQemuConf(readBounded(qemuConf, 'qemu.conf'), qemuConf);
      opts.qemuConfFile = qemuConf;
    }
    const inputs = a.running
      ? await runningDomains()
      : a.files.map((file) => ({ file, read: () => readBounded(file, 'a domain XML file') }));
    result = fromLibvirt(inputs, opts);
  } else {
    const storageCfg = a.storageCfg ?? (existsSync(DEFAULT_STORAGE_CFG) ? DEFAULT_STORAGE_CFG : undefined);
    const storages = storageCfg ? parseStorageCfg(readBounded(storageCfg, 'storage.cfg'), storageCfg) : undefined;
    result = fromProxmox(
      a.files.map((file) => ({ file, read: () => readBounded(file, 'a Proxmox guest configuration') })),
      { storages },
    );
  }
  const { document, report } = result;
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
  const target = resolve(out);
  const tmp = join(dirname(target), `.${basename(target)}.qemu-harden-${randomBytes(6).toString('hex')}`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    const dfd = openSync(dirname(target), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new InputError(`--out: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Every running libvirt domain, read through `virsh dumpxml` (without --security-info: no passwords). */
async function runningDomains(): Promise<{ file: string; read: () => string }[]> {
  const virsh = which('virsh');
  if (!virsh)
    throw new InputError(
      'import libvirt --running needs virsh, which is not installed (Debian package libvirt-clients)',
    );
  const list = await run(virsh, ['list', '--name']);
  if (list.exitCode !== 0)
    throw new InputError(
      `virsh list --name failed (exit ${list.exitCode}): ${list.stderr.trim().split('\n')[0] ?? ''}`,
    );
  const names = list.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InputError('virsh lists no running domains');
  if (names.length > MAX_INPUTS)
    throw new InputError(`virsh lists ${names.length} domains; import takes at most ${MAX_INPUTS}`);
  const out: { file: string; read: () => string }[] = [];
  for (const name of names) {
    const r = await run(virsh, ['dumpxml', '--', name]);
    const file = `virsh dumpxml ${name}`;
    out.push({
      file,
      read: () => {
        if (r.exitCode !== 0)
          throw new InputError(`${file}: failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n')[0] ?? ''}`);
        if (Buffer.byteLength(r.stdout) > MAX_SOURCE_BYTES)
          throw new InputError(`${file}: larger than ${MAX_SOURCE_BYTES} bytes`);
        return r.stdout;
      },
    });
  }
  return out;
}
