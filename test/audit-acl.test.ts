// audit's host.device-acl: named ACL entries on /dev/kvm and the tun and vhost-net nodes, read by the real getfacl
// from real device nodes the test makes in a directory of its own (never the host's /dev), given ACLs by the
// real setfacl, as udev's "uaccess" tag does for the user at the seat on Debian 13 and Ubuntu 24.04.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { audit } from '../src/audit/command.js';
import { HOST_PATHS } from '../src/audit/host.js';
import { viewOf, type HostView } from '../src/audit/types.js';
import { requireTool, tempDir } from './helpers.js';

/** A /dev of the test's own: kvm and net/tun as device nodes (mode 0660 and 0600, no one's but root's). */
function devDir(t: Parameters<typeof tempDir>[0]): string {
  const dev = tempDir(t, 'qh-audit-acl-');
  mkdirSync(join(dev, 'net'));
  execFileSync('mknod', ['-m', '0660', join(dev, 'kvm'), 'c', '10', '232']);
  execFileSync('mknod', ['-m', '0600', join(dev, 'net/tun'), 'c', '10', '200']);
  return dev;
}

function auditDev(dev: string): { findings: ReturnType<typeof audit>['findings']; view: HostView } {
  const saved = HOST_PATHS.dev;
  HOST_PATHS.dev = dev;
  try {
    const view: HostView = viewOf([]);
    return { findings: audit(view).findings.filter((f) => f.check.startsWith('host.device')), view };
  } finally {
    HOST_PATHS.dev = saved;
  }
}

test('a named user or group in the ACL of /dev/kvm or /dev/net/tun is a finding naming the entry', (t) => {
  requireTool('setfacl', 'acl');
  requireTool('getfacl', 'acl');
  const dev = devDir(t);
  assert.deepEqual(auditDev(dev).findings, [], 'owner, group and mode alone: nothing to report');

  execFileSync('setfacl', ['-m', 'u:nobody:rw', join(dev, 'kvm')]);
  execFileSync('setfacl', ['-m', 'g:nogroup:rw', join(dev, 'net/tun')]);
  const { findings, view } = auditDev(dev);
  assert.deepEqual(view.unseen, []);
  assert.deepEqual(
    findings.map((f) => [f.check, f.severity, f.evidence]),
    [
      ['host.device-acl', 'low', `${dev}/kvm: ACL user:nobody:rw-`],
      ['host.device-acl', 'low', `${dev}/net/tun: ACL group:nogroup:rw-`],
    ],
  );
  assert.match(findings[0]!.why, /uaccess/);
  assert.match(findings[0]!.bundle, /TAG-="uaccess"/);
});

test('without getfacl the audit says which ACLs it did not see, and reports none as clean', (t) => {
  const dev = devDir(t);
  execFileSync('setfacl', ['-m', 'u:nobody:rw', join(dev, 'kvm')]);
  const path = process.env.PATH;
  process.env.PATH = '';
  try {
    const { findings, view } = auditDev(dev);
    assert.deepEqual(findings, []);
    assert.deepEqual(view.unseen, [
      { what: 'the check host.device-acl', reason: 'getfacl not found (Debian package acl)' },
    ]);
  } finally {
    process.env.PATH = path;
  }
});
