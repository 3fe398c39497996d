import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { validate } from '../src/answers.js';
import { InputError } from '../src/errors.js';
import { qemuValue } from '../src/escape.js';
import { guestFence } from '../src/fence.js';
import * as G from '../src/guest.js';
import type { Guest } from '../src/model.js';
import { answersJson, plan } from '../src/plan.js';
import { requireTool, tempDir } from './helpers.js';

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const pathSegment = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 ._,=%$@*?+{}^-]{0,12}$/);
const diskPath = fc.array(pathSegment, { minLength: 1, maxLength: 3 }).map((s) => `/srv/${s.join('/')}`);

const guestArb = fc.record(
  {
    name,
    vcpus: fc.integer({ min: 1, max: 16 }),
    memoryMiB: fc.integer({ min: 64, max: 65536 }),
    machine: fc.constantFrom('q35', 'pc', 'pc-q35-7.2', 'pc-i440fx-7.2'),
    firmware: fc.constantFrom({ type: 'bios' as const }, { type: 'uefi' as const }),
    disks: fc.array(fc.record({ path: diskPath, format: fc.constantFrom('qcow2', 'raw'), readOnly: fc.boolean() }), {
      minLength: 1,
      maxLength: 3,
    }),
    network: fc.constantFrom({ mode: 'none' }, { mode: 'user' }, { mode: 'tap' }, { mode: 'tap', vhost: false }),
    display: fc.constantFrom({ mode: 'none' }, { mode: 'vnc-unix' }, { mode: 'spice-unix' }),
    description: fc.string({ maxLength: 40 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)),
    limits: fc.record({ cpuWeight: fc.integer({ min: 1, max: 10000 }), tasksMax: fc.integer({ min: 16, max: 4096 }) }),
  },
  { requiredKeys: ['name'] },
);

/**
 * Valid answers: names made unique, disks made unique per guest and across guests, and no two networked guests
 * whose names derive one MAC (three bytes of a hash: two names in some millions do; the answers refuse that).
 */
const answersArb = fc
  .record({
    useCase: fc.constantFrom('virtualization', 'emulation'),
    guests: fc.array(guestArb, { minLength: 1, maxLength: 4 }),
  })
  .map(({ useCase, guests }) => {
    const seen = new Set<string>();
    const macs = new Set<string>();
    const gs = guests.map((g, i) => {
      const n = seen.has(g.name) ? `${g.name.slice(0, 8)}-${i}` : g.name;
      seen.add(n);
      const mac = G.macAddress({ name: n, network: { mode: 'none' } } as unknown as Guest);
      const network = g.network?.mode !== 'none' && macs.has(mac) ? { mode: 'none' as const } : g.network;
      if (network?.mode !== 'none') macs.add(mac);
      // A guest needs something to boot: one disk at least.
      const disks = g.disks?.length ? g.disks : [{ path: '/srv/boot', format: 'raw' as const, readOnly: true }];
      return { ...g, name: n, network, disks: disks.map((d, j) => ({ ...d, path: `${d.path}-${n}-${j}` })) };
    });
    const doc: Record<string, unknown> = { schemaVersion: 1, useCase, guests: gs };
    if (useCase === 'emulation') doc.acceptedRisks = [{ risk: 'emulation', reason: 'generated for a property test' }];
    return doc;
  });

describe('properties of valid answers', () => {
  test('10,000 valid documents: accepted, deterministic, round-trip through answers.json', () => {
    let runs = 0;
    // Bounded by the CPU time it takes, not the wall time: that stays the same however busy the machine is.
    const cpu = process.cpuUsage();
    fc.assert(
      fc.property(answersArb, (doc) => {
        runs++;
        const a = validate(doc);
        const again = validate(JSON.parse(answersJson(a)));
        assert.deepEqual(again, a);
        const p1 = plan(a);
        const p2 = plan(again);
        assert.deepEqual(p2, p1);
      }),
      { numRuns: 10_000, seed: Date.now() % 2 ** 31 },
    );
    assert.equal(runs, 10_000);
    const used = process.cpuUsage(cpu);
    assert.ok(
      used.user + used.system < 120e6,
      `bounded in time: ${Math.round((used.user + used.system) / 1e6)} s of CPU`,
    );
  });

  test('the fence, over 2,000 documents: each guest sees all its own paths and none of the others’', () => {
    const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
    fc.assert(
      fc.property(answersArb, (doc) => {
        const a = validate(doc);
        const paths = (g: (typeof a.guests)[number]) => [
          ...G.filesOf(g).map((f) => ({ path: f.path, writable: f.access === 'rw' })),
          ...g.disks.map((d) => ({ path: d.path, writable: !d.readOnly })),
          ...[G.runtimeDir(g), G.stateDir(g), G.logsDir(g)].map((path) => ({ path, writable: true })),
        ];
        for (const g of a.guests) {
          const f = guestFence(a, g);
          const visible = (p: string) =>
            f.bind.some((b) => under(p, b.path)) ||
            (!f.tmpfs.some((t) => under(p, t)) && !f.inaccessible.some((i) => under(p, i)));
          const own = paths(g);
          for (const p of own) {
            assert.ok(visible(p.path), `${g.name} must see its own ${p.path}`);
            const bound = f.bind.find((b) => b.path === p.path);
            if (bound && p.path !== G.uefiVars(g))
              assert.equal(bound.writable, p.writable, `${p.path} bound ${p.writable ? 'read-write' : 'read-only'}`);
          }
          const mine = new Set(own.map((p) => p.path));
          for (const o of a.guests.filter((x) => x.name !== g.name))
            for (const p of paths(o))
              if (!mine.has(p.path)) assert.ok(!visible(p.path), `${g.name} must not see ${o.name}'s ${p.path}`);
        }
      }),
      { numRuns: 2_000, seed: Date.now() % 2 ** 31 },
    );
  });

  test('50 sampled bundles spread over every corner of the schema pass systemd-analyze verify and apparmor_parser', async (t) => {
    const analyze = requireTool('systemd-analyze', 'systemd');
    const parser = requireTool('apparmor_parser', 'apparmor');
    requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const dir = tempDir(t);
    const units = join(dir, 'units');
    const aa = join(dir, 'apparmor.d');
    mkdirSync(units);
    const samples = fc.sample(answersArb, { numRuns: 50, seed: 42 });
    const corners = new Set<string>();
    const profiles: string[] = [];
    samples.forEach((doc, i) => {
      const d = structuredClone(doc) as { useCase: string; guests: { name: string }[] };
      for (const g of d.guests) g.name = `s${i}-${g.name}`.slice(0, 24).replace(/-+$/, '');
      const names = d.guests.map((g) => g.name);
      if (new Set(names).size !== names.length) return;
      const a = validate(d);
      corners.add(`useCase=${a.useCase}`);
      for (const g of a.guests) {
        for (const c of [
          `machine=${g.machine}`,
          `firmware=${g.firmware.type}`,
          `network=${g.network.mode}`,
          `display=${g.display.mode}`,
          `guests=${a.guests.length}`,
        ])
          corners.add(c);
        if (g.network.mode === 'tap') corners.add(`vhost=${g.network.vhost}`);
        for (const disk of g.disks) corners.add(`disk=${disk.format},${disk.readOnly ? 'ro' : 'rw'}`);
        if (g.disks.length === 0) corners.add('disk=none');
      }
      for (const f of plan(a)) {
        if (f.path.startsWith('root/etc/systemd/system/') && f.path !== 'root/etc/systemd/system/qemu.slice')
          writeFileSync(join(units, f.path.split('/').at(-1)!), f.content);
        if (f.path.startsWith('root/etc/apparmor.d/')) {
          const target = join(aa, f.path.slice('root/etc/apparmor.d/'.length));
          mkdirSync(join(target, '..'), { recursive: true });
          writeFileSync(target, f.content);
          if (/^root\/etc\/apparmor\.d\/qemu-harden-[^/]+$/.test(f.path)) profiles.push(target);
        }
      }
    });
    const every = [
      'useCase=virtualization',
      'useCase=emulation',
      'firmware=bios',
      'firmware=uefi',
      'network=none',
      'network=user',
      'network=tap',
      'vhost=true',
      'vhost=false',
      'display=none',
      'display=vnc-unix',
      'disk=qcow2,rw',
      'disk=qcow2,ro',
      'disk=raw,rw',
      'disk=raw,ro',
      'machine=q35',
      'machine=pc',
      'machine=pc-q35-7.2',
      'machine=pc-i440fx-7.2',
      'guests=1',
      'guests=4',
    ];
    assert.deepEqual(
      every.filter((c) => !corners.has(c)),
      [],
      'the sample reaches every corner (choose another seed if not)',
    );
    const unitFiles = readdirSync(units).map((u) => join(units, u));
    assert.ok(unitFiles.length >= 50, `${unitFiles.length} units`);
    assert.ok(profiles.length >= 50, `${profiles.length} profiles`);
    // systemd-analyze reads units one by one, so the units are split over the machine's cores. It would render
    // every man page a unit's Documentation= names, for every unit (four processes each, 11 CPU seconds over the
    // sample); it is told not to (--man=no, as qemu-harden's verify does), and each page named is looked up once.
    const env = { ...process.env, SYSTEMD_UNIT_PATH: `${units}:` };
    const chunks = Array.from({ length: Math.max(1, availableParallelism()) }, (_, c) =>
      unitFiles.filter((_, i) => i % availableParallelism() === c),
    );
    const [parsed, ...verified] = await Promise.all([
      runAsync(parser, ['-Q', '-K', '-I', aa, ...profiles], process.env),
      ...chunks.filter((c) => c.length).map((c) => runAsync(analyze, ['verify', '--man=no', ...c], env)),
    ]);
    assert.equal(parsed!.code, 0, parsed!.stderr);
    for (const r of verified) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warnings');
    }
    const man = requireTool('man', 'man-db');
    const pages = new Set(
      unitFiles.flatMap((f) =>
        [...readFileSync(f, 'utf8').matchAll(/^Documentation=(.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/)),
      ),
    );
    assert.ok(pages.size > 0, 'the units name their documentation');
    for (const page of pages) {
      const m = /^man:([\w.@:-]+)\((\w+)\)$/.exec(page);
      assert.ok(m, `Documentation=${page} is a man page reference, name(section)`);
      const found = spawnSync(man, ['-w', m[2]!, m[1]!], { encoding: 'utf8' });
      assert.equal(found.status, 0, `Documentation=${page}: man finds no such page here: ${found.stderr}`);
    }
  });
});

function runAsync(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Strings built from the characters every target language treats specially. */
const hostile = fc.string({
  unit: fc.constantFrom(...'ab/.,=%$"\'\\ *?[]{}^@#;:|&<>`~!\n\t\u0000\u007f-_'.split('')),
  minLength: 1,
  maxLength: 24,
});

function outcome(doc: unknown, field: string): 'accepted' | 'rejected' {
  try {
    validate(doc);
    return 'accepted';
  } catch (e) {
    assert.ok(e instanceof InputError);
    assert.ok(
      e.message.split('\n').some((l) => l.startsWith(`${field}: `)),
      `error must name ${field}:\n${e.message}`,
    );
    return 'rejected';
  }
}

describe('hostile strings in free-text fields', () => {
  const base = (patch: (g: Record<string, unknown>) => void) => {
    const g: Record<string, unknown> = { name: 'h', disks: [{ path: '/srv/h.img', format: 'raw' }] };
    patch(g);
    return { schemaVersion: 1, useCase: 'virtualization', guests: [g] };
  };

  test('every free-text field either rejects a hostile value by name or keeps it', () => {
    const fields: [string, (g: Record<string, unknown>, v: string) => void][] = [
      ['guests.0.name', (g, v) => (g.name = v)],
      ['guests.0.description', (g, v) => (g.description = v)],
      ['guests.0.machine', (g, v) => (g.machine = v)],
      ['guests.0.cpu.model', (g, v) => (g.cpu = { model: v })],
      ['guests.0.disks.0.path', (g, v) => (g.disks = [{ path: `/srv/${v}`, format: 'raw' }])],
      ['guests.0.boot.cmdline', (g, v) => (g.boot = { kernel: '/srv/vmlinuz', cmdline: v })],
      ['guests.0.network.bridge', (g, v) => (g.network = { mode: 'tap', bridge: v })],
      ['guests.0.network.tapDevice', (g, v) => (g.network = { mode: 'tap', tapDevice: v })],
    ];
    for (const [field, set] of fields) {
      fc.assert(
        fc.property(hostile, (v) => {
          const doc = base((g) => set(g, v));
          const result = outcome(doc, field);
          if (result === 'accepted') {
            const a = validate(doc);
            assert.deepEqual(validate(JSON.parse(answersJson(a))), a);
            assert.ok(!/[\u0000-\u001f\u007f]/.test(v), `${field} accepted a control character`);
          }
        }),
        { numRuns: 300 },
      );
    }
  });

  test('a hostile disk path reaches QEMU as exactly that path', (t) => {
    const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const dir = tempDir(t);
    const values = fc.sample(
      hostile.filter((v) => !/[\u0000-\u001f\u007f/]/.test(v) && v !== '.' && v !== '..'),
      { numRuns: 40, seed: 7 },
    );
    for (const v of [...values, 'a,format=qcow2', 'b,,c', 'x=y', 'sp ace']) {
      const path = join(dir, v);
      // The schema keeps the name exactly (guest disks may not live under /tmp, where this test's file is).
      assert.equal(
        validate(base((g) => (g.disks = [{ path: `/srv/${v}`, format: 'raw' }]))).guests[0]!.disks[0]!.path,
        `/srv/${v}`,
      );
      writeFileSync(path, Buffer.alloc(512));
      const drive = `file=${qemuValue(path)},format=raw,if=none,id=d0,readonly=on`;
      const r = spawnSync(
        qemu,
        ['-machine', 'none', '-nodefaults', '-display', 'none', '-drive', drive, '-qmp', 'stdio'],
        {
          input: '{"execute":"qmp_capabilities"}\n{"execute":"query-block"}\n{"execute":"quit"}\n',
          encoding: 'utf8',
          timeout: 300_000,
        },
      );
      assert.equal(r.status, 0, `${JSON.stringify(v)}: ${r.stderr}`);
      const block = r.stdout
        .split('\n')
        .map((l) => (l.trim() ? JSON.parse(l) : null))
        .find((m) => Array.isArray(m?.return) && m.return[0]?.inserted);
      assert.equal(
        block.return[0].inserted.file,
        path,
        `QEMU opened ${block.return[0].inserted.file} for ${JSON.stringify(path)}`,
      );
    }
  });

  test('a hostile disk path in tmpfiles.d changes exactly that file, never a glob match', (t) => {
    const tmpfilesBin = requireTool('systemd-tmpfiles', 'systemd');
    const values = fc.sample(
      hostile.filter((v) => !/[\u0000-\u001f\u007f/]/.test(v) && v !== '.' && v !== '..'),
      { numRuns: 40, seed: 11 },
    );
    for (const v of [...values, 'a*', 'q?', '[ab]', '{x,y}', '\\*']) {
      const root = tempDir(t, 'qh-tmpfiles-');
      mkdirSync(join(root, 'srv'));
      mkdirSync(join(root, 'etc/tmpfiles.d'), { recursive: true });
      writeFileSync(
        join(root, 'etc/passwd'),
        'root:x:0:0::/root:/bin/sh\nqemu-h:x:990:990::/nonexistent:/usr/sbin/nologin\n',
      );
      writeFileSync(join(root, 'etc/group'), 'root:x:0:\nqemu-h:x:990:\n');
      const decoys = ['a', 'ab', 'qx', 'x', 'y', 'b', '*', '\\', 'a\\*'].filter((d) => d !== v);
      for (const d of [v, ...decoys]) writeFileSync(join(root, 'srv', d), '');
      const a = validate(base((g) => (g.disks = [{ path: `/srv/${v}`, format: 'raw' }])));
      const conf = plan(a).find((f) => f.path === 'root/etc/tmpfiles.d/qemu-harden.conf')!.content;
      writeFileSync(join(root, 'etc/tmpfiles.d/qemu-harden.conf'), conf);
      execFileSync(tmpfilesBin, [`--root=${root}`, '--create', join(root, 'etc/tmpfiles.d/qemu-harden.conf')], {
        stdio: 'pipe',
      });
      assert.equal(statSync(join(root, 'srv', v)).uid, 990, `${JSON.stringify(v)} itself is owned by the guest`);
      for (const d of decoys)
        assert.equal(statSync(join(root, 'srv', d)).uid, 0, `${JSON.stringify(d)} untouched for ${JSON.stringify(v)}`);
    }
  });
});

describe('hostile answers: derived names and read-only secrets', () => {
  /** Names picked so that guests, taps, bridges and groups run into each other often. */
  const nameish = fc.constantFrom('a', 'b', 'a-tap', 'net', 'kvm', 'x', 'qh-a', 'harden-a');
  const groupish = fc.constantFrom(
    'kvm',
    'qemu-net',
    'qemu-a',
    'qemu-net',
    'disk',
    'shadow',
    'root',
    'sudo',
    'mykvm',
    'qemu-b',
    'qemu-a-tap',
  );
  const linkish = fc.constantFrom('qh-a', 'qh-b', 'qh-net', 'br0', 'br-lan', 'qh-a-tap', 'lo0');
  const hostileDoc = fc
    .record({
      useCase: fc.constantFrom('virtualization', 'emulation'),
      kvmGroup: fc.option(groupish, { nil: undefined }),
      netGroup: fc.option(groupish, { nil: undefined }),
      guests: fc.array(
        fc.record({
          name: nameish,
          tap: fc.boolean(),
          tapDevice: fc.option(linkish, { nil: undefined }),
          bridge: fc.option(linkish, { nil: undefined }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    })
    .map(({ useCase, kvmGroup, netGroup, guests }) => ({
      schemaVersion: 1,
      useCase,
      host: { ...(kvmGroup ? { kvmGroup } : {}), ...(netGroup ? { netGroup } : {}) },
      guests: guests.map((g) => ({
        name: g.name,
        network: g.tap
          ? {
              mode: 'tap',
              ...(g.tapDevice ? { tapDevice: g.tapDevice } : {}),
              ...(g.bridge ? { bridge: g.bridge } : {}),
            }
          : { mode: 'none' },
      })),
      ...(useCase === 'emulation'
        ? { acceptedRisks: [{ risk: 'emulation', reason: 'generated for a property test' }] }
        : {}),
    }));

  test('5,000 documents: every derived name unique and never a shared or privileged name, or a refusal naming the field', () => {
    let refused = 0;
    fc.assert(
      fc.property(hostileDoc, (doc) => {
        let a;
        try {
          a = validate(doc);
        } catch (e) {
          assert.ok(e instanceof InputError, `only input errors, never a crash: ${String(e)}`);
          for (const line of e.message.split('\n'))
            assert.match(line, /^(host|guests|acceptedRisks|useCase)[a-zA-Z0-9.]*: /, line);
          refused++;
          return;
        }
        const files = plan(a).map((f) => f.path);
        assert.equal(new Set(files).size, files.length, 'no two files of the bundle share a path');
        const taps = a.guests.filter((g) => g.network.mode === 'tap');
        const accounts = [
          ...a.guests.map((g) => G.userName(g)),
          ...(a.useCase === 'virtualization' ? [a.host.kvmGroup] : []),
          ...(taps.length ? [a.host.netGroup] : []),
        ];
        assert.equal(
          new Set(accounts).size,
          accounts.length,
          `users and shared groups are distinct: ${accounts.join(' ')}`,
        );
        for (const grp of accounts.slice(a.guests.length))
          assert.ok(!['disk', 'shadow', 'root', 'sudo'].includes(grp), `${grp} is never the device group`);
        const units = [...a.guests.map((g) => G.unitName(g)), ...taps.map((g) => G.tapUnitName(g)), G.SLICE];
        assert.equal(new Set(units).size, units.length, `unit names are distinct: ${units.join(' ')}`);
        const links = taps.map((g) => G.tapDevice(g)!);
        assert.equal(new Set(links).size, links.length, 'tap devices are distinct');
        for (const g of taps)
          if (g.network.mode === 'tap' && g.network.bridge)
            assert.ok(!links.includes(g.network.bridge), `bridge ${g.network.bridge} is no guest's tap`);
        const profiles = a.guests.map((g) => G.profileName(g));
        assert.equal(new Set(profiles).size, profiles.length);
      }),
      { numRuns: 5_000, seed: Date.now() % 2 ** 31 },
    );
    assert.ok(refused > 0, 'the generator produced collisions');
  });

  const segment = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,10}$/);
  const secretPath = fc
    .tuple(
      fc.constantFrom(
        '/etc',
        '/etc/ssh',
        '/root',
        '/root/.ssh',
        '/home/alice',
        '/proc/self',
        '/sys/kernel',
        '/run/secrets',
        '/var/log',
        '/usr/bin',
        '/usr/lib',
        '/boot/grub',
        '/boot/efi',
        '/var/lib/dpkg',
        '/var/lib/private',
        '/var/lib/qemu-harden/a',
        '/var/log/qemu-harden/a',
        '/run/qemu-harden/a',
        '/dev/shm',
        '/lib',
        '/sbin',
      ),
      segment,
    )
    .map(([dir, leaf]) => `${dir}/${leaf}`);
  type Setter = [string, (g: Record<string, unknown>, p: string) => void];
  const fields: Setter[] = [
    ['guests.0.disks.0.path', (g, p) => (g.disks = [{ path: p, format: 'raw', readOnly: true }])],
    ['guests.0.disks.0.path', (g, p) => (g.disks = [{ path: p, format: 'qcow2' }])],
    ['guests.0.boot.kernel', (g, p) => (g.boot = { kernel: p })],
    ['guests.0.boot.initrd', (g, p) => (g.boot = { kernel: '/boot/vmlinuz-6.1', initrd: p })],
    ['guests.0.boot.deviceTree', (g, p) => (g.boot = { kernel: '/srv/vmlinuz', deviceTree: p })],
    ['guests.0.firmware.code', (g, p) => (g.firmware = { type: 'uefi', code: p })],
    ['guests.0.firmware.varsTemplate', (g, p) => (g.firmware = { type: 'uefi', varsTemplate: p })],
  ];

  test('a file from a place holding host secrets or system state is refused in every field, naming the field', () => {
    fc.assert(
      fc.property(secretPath, fc.constantFrom(...fields), (path, [field, set]) => {
        const g: Record<string, unknown> = { name: 'a' };
        set(g, path);
        assert.equal(
          outcome({ schemaVersion: 1, useCase: 'virtualization', guests: [g] }, field),
          'rejected',
          `${field} = ${path}`,
        );
      }),
      { numRuns: 2_000 },
    );
  });

  test('firmware, images, kernels and initrds from the system’s own places are accepted and never get a tmpfiles line', () => {
    const allowed = fc.tuple(
      fc.constantFrom<[string, string]>(
        ['guests.0.disks.0.path', '/usr/share/images'],
        ['guests.0.firmware.code', '/usr/share/OVMF'],
        ['guests.0.firmware.varsTemplate', '/usr/share/qemu'],
        ['guests.0.boot.kernel', '/boot/vmlinuz-'],
        ['guests.0.boot.initrd', '/boot/initrd.img-'],
        ['guests.0.disks.0.path', '/srv/iso'],
      ),
      segment,
    );
    fc.assert(
      fc.property(allowed, ([[field, prefix], leaf]) => {
        const path = prefix.endsWith('-') ? `${prefix}${leaf}` : `${prefix}/${leaf}`;
        const set = fields.find(([f]) => f === field)!;
        const g: Record<string, unknown> = { name: 'a' };
        set[1](g, path);
        // A guest needs something to boot: a kernel from /boot, itself a system file left as it is.
        if (!g.disks && !g.boot) g.boot = { kernel: '/boot/vmlinuz-base' };
        const doc = { schemaVersion: 1, useCase: 'virtualization', guests: [g] };
        assert.equal(outcome(doc, field), 'accepted', `${field} = ${path}`);
        const tmp = plan(validate(doc)).find((f) => f.path === 'root/etc/tmpfiles.d/qemu-harden.conf')!.content;
        const touched = tmp.split('\n').filter((l) => /^(z|Z|a\+?|A\+?|C|m|M) /.test(l));
        if (path.startsWith('/srv/')) assert.equal(touched.length, 1, `${path} gets its ACL entry`);
        else assert.deepEqual(touched, [], `${path} is left exactly as it is`);
      }),
      { numRuns: 1_000 },
    );
  });
});
