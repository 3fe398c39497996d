// docs/windows.md tells the operator how to bring a TPM's state over from swtpm's single-file format (Proxmox's
// tpmstate0 volumes) into the directory the bundle's swtpm reads. This runs that script as the page prints it,
// on a TPM made by swtpm_setup the way Proxmox makes one, and checks with swtpm itself that the directory now
// holds the same TPM: the same permanent state, endorsement keys and all.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, requireTool, tempDir } from './helpers.js';

/** The script under "From swtpm's single-file format", as docs/windows.md prints it. */
function documentedScript(): string {
  const doc = readFileSync(join(REPO, 'docs/windows.md'), 'utf8');
  const at = doc.indexOf("**From swtpm's single-file format**");
  assert.ok(at >= 0, 'docs/windows.md has the conversion');
  const m = /```sh\n([\s\S]*?)```/.exec(doc.slice(at));
  assert.ok(m, 'the conversion is a sh block');
  return m[1]!;
}

/** The permanent state of the TPM swtpm serves from `tpmstate`, as swtpm_ioctl saves it. */
async function permanentState(tpmstate: string, dir: string, name: string): Promise<Buffer> {
  const sock = join(dir, `${name}.sock`);
  const child = spawn(
    'swtpm',
    ['socket', '--tpm2', '--tpmstate', tpmstate, '--ctrl', `type=unixio,path=${sock}`, '--flags', 'not-need-init'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    for (let i = 0; i < 200 && !existsSync(sock) && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(sock), `swtpm serves ${tpmstate}: ${stderr}`);
    const out = join(dir, `${name}.permanent`);
    const save = spawnSync('swtpm_ioctl', ['--unix', sock, '--save', 'permanent', out], { encoding: 'utf8' });
    assert.equal(save.status, 0, save.stderr + stderr);
    spawnSync('swtpm_ioctl', ['--unix', sock, '-s']);
    return readFileSync(out);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
}

test('docs/windows.md’s conversion of a single-file TPM state yields the same TPM in swtpm’s directory format', async (t) => {
  for (const [tool, pkg] of [
    ['swtpm', 'swtpm'],
    ['swtpm_setup', 'swtpm-tools'],
    ['swtpm_ioctl', 'swtpm-tools'],
    ['bash', 'bash'],
  ] as const)
    requireTool(tool, pkg);
  const dir = tempDir(t, 'qh-tpm-state-');
  const from = join(dir, 'vm-100-disk-1.raw');
  const to = join(dir, 'qemu-harden', 'tpm2');
  // Proxmox allocates a 4 MiB raw volume and lets swtpm_setup write the TPM into it. The PCR banks are left as
  // libtpms makes them ("-"): a bank change swtpm_setup asks for is pending until the TPM next starts, and the
  // converted TPM, started once, would rightly differ from the file in just that.
  writeFileSync(from, '');
  truncateSync(from, 4 * 1024 * 1024);
  const setup = spawnSync(
    'swtpm_setup',
    ['--tpm2', '--tpmstate', `file://${from}`, '--createek', '--pcr-banks', '-', '--not-overwrite'],
    { encoding: 'utf8' },
  );
  assert.equal(setup.status, 0, setup.stderr + setup.stdout);
  const before = await permanentState(`backend-uri=file://${from}`, dir, 'before');

  const script = documentedScript()
    .replace(/^FROM=.*$/m, `FROM=${from}`)
    .replace(/^DIR=.*$/m, `DIR=${to}`)
    .replace(/^OWNER=.*$/m, 'OWNER=root');
  // stdin is not a socket, or bash at SHLVL 0 would read the operator's ~/.bashrc first.
  const run = spawnSync('bash', ['-c', script], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.equal(run.status, 0, run.stderr + run.stdout);

  assert.ok(existsSync(join(to, 'tpm2-00.permall')), 'the directory holds swtpm’s state file');
  assert.equal(statSync(to).mode & 0o777, 0o700);
  assert.equal(statSync(join(to, 'tpm2-00.permall')).mode & 0o777, 0o600);
  const after = await permanentState(`dir=${to}`, dir, 'after');
  assert.ok(after.equals(before), 'the same permanent state: the same TPM, its keys with it');
});
