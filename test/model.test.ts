import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applySet, validate } from '../src/answers.js';
import { InputError } from '../src/errors.js';
import { requiredRisks } from '../src/rules.js';

const base = () => ({
  schemaVersion: 1,
  useCase: 'virtualization',
  guests: [{ name: 'a', disks: [{ path: '/srv/a.img', format: 'raw' }] }],
});

function errorsOf(doc: unknown): string[] {
  try {
    validate(doc);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    return e.message.split('\n');
  }
  return [];
}

function expectError(doc: unknown, path: string, fragment: string) {
  const errors = errorsOf(doc);
  assert.ok(
    errors.some((e) => e.startsWith(`${path}: `) && e.includes(fragment)),
    `expected an error at ${path} containing "${fragment}", got:\n${errors.join('\n')}`,
  );
}

describe('answers model', () => {
  test('fills secure defaults', () => {
    const a = validate(base());
    const g = a.guests[0]!;
    assert.equal(g.machine, 'q35');
    assert.deepEqual(g.isolation.sandbox, {
      enabled: true,
      obsolete: 'deny',
      elevatePrivileges: 'deny',
      spawn: 'deny',
      resourceControl: 'deny',
    });
    assert.equal(g.isolation.apparmor, true);
    assert.equal(g.network.mode, 'none');
    assert.equal(g.display.mode, 'none');
    assert.equal(g.disks[0]!.readOnly, false);
    assert.equal(a.host.kvmGroup, 'kvm');
  });

  test('unknown keys are errors, at their path', () => {
    expectError({ ...base(), extra: 1 }, '(document)', 'unknown key "extra"');
    const d = base();
    (d.guests[0]!.disks[0] as Record<string, unknown>).cache = 'none';
    expectError(d, 'guests.0.disks.0', 'unknown key "cache"');
  });

  test('the disk format is explicit and never guessed', () => {
    const d = base();
    delete (d.guests[0]!.disks[0] as Record<string, unknown>).format;
    expectError(d, 'guests.0.disks.0.format', 'never probed');
  });

  test('a newer schemaVersion names the upgrade', () => {
    expectError({ ...base(), schemaVersion: 2 }, 'schemaVersion', 'newer than this qemu-harden understands');
  });

  test('guest names are safe and unique', () => {
    for (const bad of ['-a', 'A', 'a_b', 'a-', 'x'.repeat(25), 'a b', '']) {
      const d = base();
      d.guests[0]!.name = bad;
      expectError(d, 'guests.0.name', 'must be 1-24 characters');
    }
    const d = base();
    d.guests.push({ name: 'a', disks: [{ path: '/srv/b.img', format: 'raw' }] });
    expectError(d, 'guests.1.name', 'must be unique');
  });

  test('paths are absolute, normalised and free of control characters', () => {
    for (const [bad, msg] of [
      ['srv/a.img', 'absolute'],
      ['/srv/../etc/shadow', '".."'],
      ['/srv/a\nb.img', 'newlines'],
      ['/srv//a.img', 'normalised'],
      ['/srv/a\u0000', 'NUL'],
    ] as const) {
      const d = base();
      d.guests[0]!.disks[0]!.path = bad;
      expectError(d, 'guests.0.disks.0.path', msg);
    }
  });

  test('a writable disk is never shared, and never under a system directory', () => {
    const d = base();
    d.guests.push({ name: 'b', disks: [{ path: '/srv/a.img', format: 'raw' }] });
    expectError(d, 'guests.1.disks.0.path', 'one writable disk is never shared');
    const ro = base();
    ro.guests.push({ name: 'b', disks: [{ path: '/srv/a.img', format: 'raw', readOnly: true } as never] });
    expectError(ro, 'guests.1.disks.0.path', 'is written by guest "a"');
    const shared = base();
    shared.guests[0]!.disks[0] = { path: '/srv/iso', format: 'raw', readOnly: true } as never;
    shared.guests.push({ name: 'b', disks: [{ path: '/srv/iso', format: 'raw', readOnly: true } as never] });
    assert.deepEqual(errorsOf(shared), []);
    const sys = base();
    sys.guests[0]!.disks[0]!.path = '/etc/a.img';
    expectError(sys, 'guests.0.disks.0.path', 'is under /etc, which holds host secrets or system state');
  });

  test('emulation needs an acknowledged risk, and the risk must be real', () => {
    const d = { ...base(), useCase: 'emulation' };
    expectError(d, 'useCase', 'takes the risk "emulation"');
    const ok = { ...d, acceptedRisks: [{ risk: 'emulation', reason: 'trusted build sources only' }] };
    assert.deepEqual(errorsOf(ok), []);
    expectError(
      { ...base(), acceptedRisks: [{ risk: 'emulation', reason: 'trusted build sources only' }] },
      'acceptedRisks.0',
      'do not take that risk',
    );
    expectError(
      { ...d, acceptedRisks: [{ risk: 'emulation', reason: 'ok' }] },
      'acceptedRisks.0.reason',
      'at least 10 characters',
    );
  });

  test('every sandbox relaxation and AppArmor off is a risk to accept', () => {
    const d = base();
    (d.guests[0] as Record<string, unknown>).isolation = { sandbox: { spawn: 'allow' }, apparmor: false };
    expectError(d, 'guests.0.isolation.sandbox.spawn', '"sandbox-spawn"');
    expectError(d, 'guests.0.isolation.apparmor', '"apparmor-off"');
    const a = validate({
      ...d,
      acceptedRisks: [
        { risk: 'sandbox-spawn', guest: 'a', reason: 'runs a helper we audited' },
        { risk: 'apparmor-off', guest: 'a', reason: 'host has SELinux instead' },
      ],
    });
    assert.deepEqual(
      requiredRisks(a).map((r) => r.risk),
      ['sandbox-spawn', 'apparmor-off'],
    );
  });

  test('machine types outside the security-supported list need acceptance', () => {
    const d = base();
    (d.guests[0] as Record<string, unknown>).machine = 'microvm';
    expectError(d, 'guests.0.machine', 'machine-unsupported');
    (d.guests[0] as Record<string, unknown>).machine = 'pc-q35-7.2';
    assert.deepEqual(errorsOf(d), []);
  });

  test('PCI devices and IOMMU groups go to one guest', () => {
    const d = {
      ...base(),
      guests: [
        { name: 'a', passthrough: { pci: [{ address: '0000:01:00.0', iommuGroup: 3 }] } },
        { name: 'b', passthrough: { pci: [{ address: '0000:01:00.1', iommuGroup: 3 }] } },
      ],
      acceptedRisks: [
        { risk: 'pci-passthrough', guest: 'a', reason: 'dedicated NIC for this guest' },
        { risk: 'pci-passthrough', guest: 'b', reason: 'dedicated NIC for this guest' },
      ],
    };
    expectError(d, 'guests.1.passthrough.pci.0.iommuGroup', 'IOMMU group 3 already belongs to guest "a"');
  });

  test('TLS listeners need credentials; plain text needs acceptance', () => {
    const d = base();
    (d.guests[0] as Record<string, unknown>).migration = { enabled: true, port: 49152 };
    expectError(d, 'guests.0.migration.tlsDir', 'required when tls is true');
    (d.guests[0] as Record<string, unknown>).migration = { enabled: true, tls: false, port: 49152 };
    expectError(d, 'guests.0.migration.tls', 'migration-plaintext');
  });

  test('memory limits cannot starve the guest', () => {
    const d = base();
    (d.guests[0] as Record<string, unknown>).memoryMiB = 2048;
    (d.guests[0] as Record<string, unknown>).limits = { memoryMaxMiB: 1024 };
    expectError(d, 'guests.0.limits.memoryMaxMiB', 'at least memoryMiB');
  });
});

describe('guests that cannot work are refused, naming the field', () => {
  test('a guest with no disk and no kernel has nothing to boot; --set guests.1.name makes such a guest', () => {
    const d = applySet(base(), 'guests.1.name=db');
    expectError(d, 'guests.1.disks', 'nothing to boot');
    assert.equal(errorsOf(base()).length, 0);
    const kernelOnly = { ...base(), guests: [{ name: 'k', boot: { kernel: '/srv/vmlinuz' } }] };
    assert.deepEqual(errorsOf(kernelOnly), []);
  });

  test('guest files under /home, /root, /tmp or /var/tmp: the unit hides them (ProtectHome=, PrivateTmp=)', () => {
    const at = (patch: Record<string, unknown>) => ({ ...base(), guests: [{ ...base().guests[0], ...patch }] });
    expectError(
      at({ disks: [{ path: '/home/u/vm.qcow2', format: 'qcow2' }] }),
      'guests.0.disks.0.path',
      'ProtectHome=yes',
    );
    expectError(
      at({ disks: [{ path: '/root/vm.img', format: 'raw', readOnly: true }] }),
      'guests.0.disks.0.path',
      'ProtectHome=yes',
    );
    expectError(at({ disks: [{ path: '/tmp/vm.img', format: 'raw' }] }), 'guests.0.disks.0.path', 'PrivateTmp=yes');
    expectError(at({ disks: [{ path: '/var/tmp/vm.img', format: 'raw' }] }), 'guests.0.disks.0.path', 'PrivateTmp=yes');
    expectError(at({ boot: { kernel: '/tmp/vmlinuz' } }), 'guests.0.boot.kernel', 'PrivateTmp=yes');
    expectError(
      at({ firmware: { type: 'uefi', code: '/home/u/OVMF_CODE.fd' } }),
      'guests.0.firmware.code',
      'ProtectHome=yes',
    );
    expectError(
      at({ display: { mode: 'vnc-tls', listen: '127.0.0.1', port: 5900, tlsDir: '/home/u/pki' } }),
      'guests.0.display.tlsDir',
      'ProtectHome=yes',
    );
    assert.deepEqual(
      errorsOf(at({ disks: [{ path: '/homes/vm.img', format: 'raw' }] })),
      [],
      'only the directories themselves',
    );
  });
});

describe('a TPM and Secure Boot', () => {
  test('tpm is none by default; tpm2 gives the guest its swtpm, whose unit and profile names are the guest’s', () => {
    assert.equal(validate(base()).guests[0]!.tpm, 'none');
    const doc = base();
    (doc.guests[0] as Record<string, unknown>).tpm = 'tpm1.2';
    expectError(doc, 'guests.0.tpm', 'must be "none" or "tpm2"');
    const clash = {
      ...base(),
      guests: [
        { name: 'a', tpm: 'tpm2', disks: [{ path: '/srv/a.img', format: 'raw' }] },
        { name: 'a-tpm', disks: [{ path: '/srv/b.img', format: 'raw' }] },
      ],
    };
    expectError(clash, 'guests.1.name', 'gives the unit "qemu-a-tpm.service", which is already the TPM unit');
    expectError(clash, 'guests.1.name', 'gives the AppArmor profile "qemu-harden-a-tpm", which is already the TPM’s');
    clash.guests[0]!.tpm = 'none';
    assert.doesNotThrow(() => validate(clash), 'without a TPM, guest a takes none of those names');
  });

  test('Secure Boot asked for is Secure Boot enforced: its files default to the Secure Boot build and Microsoft’s keys', () => {
    const fw = (firmware: Record<string, unknown>) => {
      const doc = base();
      (doc.guests[0] as Record<string, unknown>).firmware = firmware;
      return validate(doc).guests[0]!.firmware;
    };
    assert.deepEqual(fw({ type: 'uefi', secureBoot: true }), {
      type: 'uefi',
      secureBoot: true,
      code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
      varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
    });
    assert.deepEqual(fw({ type: 'uefi' }), {
      type: 'uefi',
      secureBoot: false,
      code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
      varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd',
    });
    // Read back as a bundle keeps them, the answers are the same bytes.
    const doc = base();
    (doc.guests[0] as Record<string, unknown>).firmware = { type: 'uefi', secureBoot: true };
    const once = JSON.stringify(validate(doc));
    assert.equal(JSON.stringify(validate(JSON.parse(once))), once);
    const given = fw({ type: 'uefi', secureBoot: true, code: '/srv/fw/CODE.fd' });
    assert.equal(given.type === 'uefi' && given.code, '/srv/fw/CODE.fd', 'a file given is kept');
  });

  test('Secure Boot with a kernel given to QEMU is refused: OVMF starts such a kernel unchecked', () => {
    const doc = {
      ...base(),
      guests: [
        {
          name: 'a',
          firmware: { type: 'uefi', secureBoot: true },
          boot: { kernel: '/srv/vmlinuz' },
        },
      ],
    };
    expectError(doc, 'guests.0.boot.kernel', 'cannot be used with Secure Boot');
    doc.guests[0]!.firmware.secureBoot = false;
    assert.doesNotThrow(() => validate(doc));
  });
});

describe('--set', () => {
  test('edits one field by dotted path, JSON when it parses, else string', () => {
    let d: unknown = base();
    d = applySet(d, 'guests.0.disks.0.path=/srv/b.img');
    d = applySet(d, 'guests.0.vcpus=4');
    d = applySet(d, 'guests.0.network={"mode":"tap"}');
    d = applySet(d, 'guests.0.disks.1.path=/srv/c.img');
    const g = (d as ReturnType<typeof base>).guests[0] as Record<string, unknown>;
    assert.equal((g.disks as { path: string }[])[0]!.path, '/srv/b.img');
    assert.equal(g.vcpus, 4);
    assert.deepEqual(g.network, { mode: 'tap' });
    assert.equal((g.disks as { path: string }[])[1]!.path, '/srv/c.img');
  });

  test('refuses gaps, bad paths and prototype keys', () => {
    assert.throws(() => applySet(base(), 'guests.5.name=x'), /would leave a gap/);
    assert.throws(() => applySet(base(), 'guests.x.name=x'), /is a list; "x" is not an index/);
    assert.throws(() => applySet(base(), 'novalue'), /expected PATH=VALUE/);
    assert.throws(() => applySet(base(), '__proto__.polluted=1'), /not a valid field path/);
    assert.throws(() => applySet(base(), 'useCase.x=1'), /is "virtualization", not an object/);
  });
});
