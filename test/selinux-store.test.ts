// verify's SELinux check with the real tools and no SELinux kernel: the bundle's modules built by semodule into a
// copy of this host's policy store, the rules present in the built policy (sesearch), every guest's path resolving
// to its context (matchpathcon), and the host's own store untouched. Each build rebuilds the whole policy.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { runCheck } from '../src/checks/check.js';
import { selinux } from '../src/confine/selinux.js';
import { categoryPairs } from '../src/mcs.js';
import { plan } from '../src/plan.js';
import { generateBundle, requireTool, tempDir } from './helpers.js';
import { WITH_DEVICES } from './selinux-doc.js';

describe('verify builds the modules into a copy of this host’s policy store (semodule, sesearch, matchpathcon)', async () => {
  for (const [tool, pkg] of [
    ['semodule', 'policycoreutils'],
    ['matchpathcon', 'selinux-utils'],
    ['sesearch', 'setools'],
  ] as const)
    requireTool(tool, pkg);
  if (!existsSync('/var/lib/selinux/default'))
    throw new Error('no SELinux policy store: install the Debian package selinux-policy-default');
  const work = tempDir({ after }, 'qh-selinux-');
  // db has a TPM and a tap, so the helper's and the tap's rules are built too; each guest has a shared folder.
  const bundle = await generateBundle(work, WITH_DEVICES);
  const a = validate(WITH_DEVICES);
  const subject = (dir: string) => ({ dir, answers: a, expected: plan(a) });
  const store = () => readdirSync('/var/lib/selinux/default/active/modules', { recursive: true }).sort().join('\n');
  const storeBefore = store();

  test('the modules build, the rules are in the policy, and every path resolves to its context', async () => {
    const r = await runCheck(selinux.check, subject(bundle));
    assert.equal(r.result.status, 'passed', JSON.stringify(r));
    assert.match(r.result.detail ?? '', /^3 modules built into a copy of the default policy; 15 paths resolve/);
    assert.equal(store(), storeBefore, 'the host’s own store is unchanged');
  });

  test('a module the policy cannot build fails, naming it', async () => {
    const broken = join(work, 'broken');
    cpSync(bundle, broken, { recursive: true });
    const m = join(broken, 'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil');
    writeFileSync(m, readFileSync(m, 'utf8').replace('(allow init_t svirt_t', '(allow init_t no_such_type_t'));
    const r = await runCheck(selinux.check, subject(broken));
    assert.equal(r.result.status, 'failed');
    assert.match(
      r.findings[0]!.message,
      /semodule could not build .*: Failed to resolve allow statement at qemu-harden\.cil line 6/,
    );
    assert.equal(r.findings[0]!.file, 'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil');
  });

  test('modules that build without the transition or TCG’s execmem, and label a disk with another pair, fail on each rule and on the path', async () => {
    // One build for both: semodule rebuilds the whole policy each time.
    const wrong = join(work, 'wrong');
    cpSync(bundle, wrong, { recursive: true });
    const shared = join(wrong, 'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil');
    writeFileSync(
      shared,
      readFileSync(shared, 'utf8')
        .replace(/^\(allow init_t svirt_t \(process \(transition\)\)\)$/m, '')
        .replace(/^\(allow svirt_t self \(process \(execmem\)\)\)$/m, ''),
    );
    const db = join(wrong, 'root/usr/share/selinux/packages/qemu-harden/qemu-harden-db.cil');
    const [x, y] = categoryPairs(a.guests).get('db')!;
    writeFileSync(db, readFileSync(db, 'utf8').replaceAll(`(c${x} c${y})`, '(c0 c1)'));
    const r = await runCheck(selinux.check, subject(wrong));
    assert.equal(r.result.status, 'failed');
    const messages = r.findings.map((f) => f.message).join('\n');
    assert.match(messages, /lacks the rule that systemd may start QEMU/);
    assert.doesNotMatch(messages, /NoNewPrivileges/, 'the other rule of the same query is found');
    // Debian's policy has execmem for the virt domain under the boolean virt_use_execmem: that one does not count.
    assert.match(messages, /lacks the rule that TCG may map writable code .*: no such rule, or only under a boolean/);
    assert.match(messages, /\/srv\/qemu\/db\/disk\.qcow2 resolves to .*:s0:c0,c1, not/);
  });
});
