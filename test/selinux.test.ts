// The SELinux backend on any machine, with the real tools and no SELinux kernel: each guest's category pair
// (derived from its name, unique in the bundle), the bundle's files and unit lines, and what audit and status make
// of a QEMU's context and of its disks' labels (set with chcon, read back with stat, as on an SELinux host). verify's
// policy builds, which take semodule half a minute, are test/selinux-store.test.ts; the enforcing proof is
// test/selinux-vm.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { parseCommandLine } from '../src/audit/cmdline.js';
import { fromUnit, POLICY } from '../src/audit/expect.js';
import { commandLineOnly, viewOf, type HelperProcess, type QemuProcess } from '../src/audit/types.js';
import { literalGlob, relabelPaths, selinux } from '../src/confine/selinux.js';
import { fileContextPath } from '../src/escape.js';
import { virtiofsd as virtiofsdKind } from '../src/helpers/virtiofsd.js';
import { categoriesOf, categoryPairs, level, processContext } from '../src/mcs.js';
import type { AnswersInput } from '../src/model.js';
import { plan } from '../src/plan.js';
import { guestFilesDir, requireTool } from './helpers.js';
import { DOC, TLS, WITH_DEVICES } from './selinux-doc.js';

describe('each guest’s SELinux category pair', () => {
  const guests = (names: string[]) => names.map((name) => ({ name, isolation: {} }));

  test('is two different categories of c0…c1023, the lower first, the same for the same name', () => {
    const a = categoryPairs(guests(['web', 'db']));
    const b = categoryPairs(guests(['db', 'web']));
    for (const name of ['web', 'db']) {
      const [x, y] = a.get(name)!;
      assert.ok(Number.isInteger(x) && Number.isInteger(y) && 0 <= x && x < y && y < 1024, `${name}: ${x},${y}`);
      assert.deepEqual(b.get(name), a.get(name));
    }
  });

  test('is unique across a bundle of 4096 guests, and a guest keeps its pair when others join', () => {
    const names = Array.from({ length: 4096 }, (_, i) => `g${i}`);
    const pairs = categoryPairs(guests(names));
    assert.equal(new Set([...pairs.values()].map(level)).size, names.length);
    const fewer = categoryPairs(guests(names.slice(0, 10)));
    for (const [name, p] of fewer) assert.deepEqual(pairs.get(name), p, name);
  });

  test('is the one the answers name when they name one, and no other guest gets it', () => {
    const derived = categoryPairs(guests(['web'])).get('web')!;
    const pairs = categoryPairs([
      { name: 'db', isolation: { selinuxCategories: [derived[0], derived[1]] } },
      { name: 'web', isolation: {} },
    ]);
    assert.deepEqual(pairs.get('db'), derived);
    assert.notDeepEqual(pairs.get('web'), derived);
  });

  test('the answers refuse one pair named for two guests, and TCG under SELinux without its accepted risk', () => {
    const twice = structuredClone(DOC);
    for (const g of twice.guests) g.isolation = { selinuxCategories: [3, 7] };
    assert.throws(() => validate(twice), /guests\.1\.isolation\.selinuxCategories.*guest "web"'s pair too/s);
    const unaccepted = structuredClone(DOC);
    unaccepted.acceptedRisks = unaccepted.acceptedRisks!.filter((r) => r.risk !== 'selinux-execmem');
    assert.throws(() => validate(unaccepted), /host\.confinement.*selinux-execmem/s);
    const kvm = { ...structuredClone(DOC), useCase: 'virtualization' as const, acceptedRisks: [] };
    assert.doesNotThrow(() => validate(kvm));
  });

  test('under SELinux a guest’s folder carries its pair and its virtiofsd runs in its context, as passt does', () => {
    const helpers = (target: 'debian-12' | 'debian-13'): AnswersInput => ({
      ...structuredClone(DOC),
      host: { confinement: 'selinux', target },
      guests: DOC.guests.map((g) =>
        g.name === 'db'
          ? { ...g, network: { mode: 'user' }, tpm: 'tpm2', shares: [{ path: '/srv/shares/db', tag: 'data' }] }
          : g,
      ),
    });
    // Debian 13: virtiofsd in a unit of its own, in db's context; db's module labels the folder read-only content
    // with db's pair; the shared module has what virtiofsd asks as it starts.
    const trixie = validate(helpers('debian-13'));
    const db = processContext(categoryPairs(trixie.guests).get('db')!);
    const files13 = Object.fromEntries(plan(trixie).map((f) => [f.path, f.content]));
    assert.match(files13['root/etc/systemd/system/qemu-db-fs0.service']!, new RegExp(`^SELinuxContext=${db}$`, 'm'));
    const dbModule = files13['root/usr/share/selinux/packages/qemu-harden/qemu-harden-db.cil']!.split('\n');
    const [x, y] = categoryPairs(trixie.guests).get('db')!;
    assert.ok(
      dbModule.includes(
        `(filecon "/srv/shares/db(/.*)?" any (system_u object_r virt_content_t ((s0 (c${x} c${y})) (s0 (c${x} c${y})))))`,
      ),
      dbModule.join('\n'),
    );
    assert.ok(dbModule.includes('; relabel /srv/shares/db'));
    const shared13 = files13['root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil']!;
    assert.match(shared13, /^\(allow svirt_t sysctl_fs_t \(file \(getattr read open\)\)\)$/m);
    assert.match(shared13, /^\(dontaudit svirt_t sysctl_kernel_t \(dir \(search\)\)\)$/m);
    assert.doesNotMatch(shared13, /^\(allow svirt_t sysctl_kernel_t/m);
    // Debian 13's policy has the user_namespace class, which passt's sandbox needs; swtpm_setup ends its swtpm.
    assert.match(shared13, /^\(allow svirt_t self \(user_namespace \(create\)\)\)$/m);
    assert.match(shared13, /^\(allow svirt_t self \(process \(sigkill\)\)\)$/m);
    // Debian 12 serves the folder through QEMU's own 9p, which the guest's module labels the same way; passt's unit
    // runs in the guest's context, with the shared module's rules for it, and no virtiofsd's.
    const bookworm = validate(helpers('debian-12'));
    const bundle = Object.fromEntries(plan(bookworm).map((f) => [f.path, f.content]));
    assert.equal(bundle['root/etc/systemd/system/qemu-db-fs0.service'], undefined);
    assert.match(
      bundle['root/usr/share/selinux/packages/qemu-harden/qemu-harden-db.cil']!,
      /^; shared folder "data" \(9p\), read-only$/m,
    );
    assert.match(
      bundle['root/etc/systemd/system/qemu-db-net.service']!,
      new RegExp(`^SELinuxContext=${processContext(categoryPairs(bookworm.guests).get('db')!)}$`, 'm'),
    );
    const shared = bundle['root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil']!;
    assert.match(shared, /^\(allow svirt_t self \(cap_userns \(sys_admin\)\)\)$/m);
    assert.match(shared, /^\(allow svirt_t self \(udp_socket \(create /m);
    assert.doesNotMatch(shared, /sysctl_fs_t/);
    // Debian 12's policy has no user_namespace class: a rule naming it would not build there.
    assert.doesNotMatch(shared, /user_namespace/);
    // Without user-mode networking or a folder, none of it.
    const noNet = { ...structuredClone(DOC), host: { confinement: 'selinux' as const, target: 'debian-13' as const } };
    const plain = plan(validate(noNet)).find((f) => f.path.endsWith('/qemu-harden.cil'))!.content;
    assert.doesNotMatch(plain, /cap_userns|udp_socket|mounton|sysctl_|user_namespace|sigkill/);
    // QEMU connects to its TPM's socket, passt's and virtiofsd's: the one rule all need is written once.
    for (const module of [shared, shared13])
      assert.equal(
        module.split('\n').filter((l) => l === '(allow svirt_t self (unix_stream_socket (connectto)))').length,
        1,
      );
  });

  test('categoriesOf reads a context’s clearance', () => {
    assert.deepEqual(categoriesOf('system_u:system_r:svirt_t:s0:c12,c345'), [12, 345]);
    assert.deepEqual(categoriesOf('system_u:system_r:svirt_t:s0'), []);
    assert.equal(categoriesOf('unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023')?.length, 1024);
    assert.equal(categoriesOf('unconfined'), undefined);
  });
});

describe('a bundle for an SELinux host', () => {
  const a = validate(DOC);
  const files = plan(a);
  const pairs = categoryPairs(a.guests);
  const file = (path: string) => files.find((f) => f.path === path)?.content;

  test('holds the shared module and one per guest, and no AppArmor file; an AppArmor bundle holds no module', () => {
    const modules = files.filter((f) => f.path.startsWith('root/usr/share/selinux/')).map((f) => f.path);
    assert.deepEqual(modules.sort(), [
      'root/usr/share/selinux/packages/qemu-harden/qemu-harden-db.cil',
      'root/usr/share/selinux/packages/qemu-harden/qemu-harden-web.cil',
      'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil',
    ]);
    assert.deepEqual(
      files.filter((f) => f.path.includes('apparmor')),
      [],
    );
    const other = plan(
      validate({ ...structuredClone(DOC), host: { confinement: 'apparmor' }, acceptedRisks: [DOC.acceptedRisks![0]!] }),
    );
    assert.deepEqual(
      other.filter((f) => f.path.includes('selinux')).map((f) => f.path),
      [],
    );
    assert.ok(other.some((f) => f.path.includes('apparmor.d')));
  });

  test('its README runs each socket client at the guest’s own level, where an AppArmor bundle’s runs it as root', () => {
    const readme = (f: typeof files) => f.find((x) => x.path === 'README.md')!.content;
    const web = level(pairs.get('web')!);
    assert.match(
      readme(files),
      new RegExp(`^sudo runcon -l ${web} socat - UNIX-CONNECT:/run/qemu-harden/web/qmp\\.sock `, 'm'),
    );
    assert.match(
      readme(files),
      new RegExp(
        `^sudo runcon -l ${web} socat -,rawer,escape=0x1d UNIX-CONNECT:/run/qemu-harden/web/serial\\.sock `,
        'm',
      ),
    );
    const other = plan(
      validate({ ...structuredClone(DOC), host: { confinement: 'apparmor' }, acceptedRisks: [DOC.acceptedRisks![0]!] }),
    );
    assert.match(readme(other), /^sudo socat - UNIX-CONNECT:\/run\/qemu-harden\/web\/qmp\.sock /m);
    assert.doesNotMatch(readme(other), /runcon/);
  });

  /** The README of DOC with a TPM and passt for web, under SELinux or AppArmor. */
  const withHelpers = (confinement: 'selinux' | 'apparmor') => {
    const d = structuredClone(DOC);
    d.host = { ...d.host, confinement };
    if (confinement === 'apparmor') d.acceptedRisks = [DOC.acceptedRisks![0]!];
    Object.assign(d.guests![0]!, { network: { mode: 'user', backend: 'passt' }, tpm: 'tpm2' });
    return plan(validate(d)).find((x) => x.path === 'README.md')!.content;
  };

  test('its README says each helper runs in its guest’s own context, where an AppArmor bundle’s names the helper’s profile', () => {
    const helperLines = (readme: string) =>
      readme
        .split('## Helper units')[1]!
        .split('\n## ')[0]!
        .split('\n')
        .filter((l) => l.startsWith('- web: '));
    const se = withHelpers('selinux');
    const web = level(pairs.get('web')!);
    assert.equal(helperLines(se).length, 2, se);
    for (const l of helperLines(se)) {
      assert.ok(l.includes(`its guest’s own SELinux context (svirt\\_t with the pair ${web})`), l);
      assert.doesNotMatch(l, /AppArmor/);
    }
    assert.deepEqual(
      helperLines(withHelpers('apparmor')).map((l) => /its own AppArmor profile \(([^)]+)\)/.exec(l)?.[1]),
      ['qemu-harden-web-tpm', 'qemu-harden-web-net'],
    );
  });

  test('its README, as an AppArmor bundle’s, says how to let the guests on user-mode networking ping', () => {
    // The command spans the groups of the guests on user-mode networking, here web alone.
    for (const readme of [withHelpers('selinux'), withHelpers('apparmor')])
      assert.match(
        readme,
        /^sudo mkdir -p \/etc\/sysctl\.d && echo "net\.ipv4\.ping_group_range = \$\(getent group qemu-web \| .*\)" \| sudo tee \/etc\/sysctl\.d\/60-qemu-harden-ping\.conf && sudo systemctl restart systemd-sysctl\.service$/m,
      );
    assert.doesNotMatch(file('README.md')!, /ping_group_range/, 'no guest on user-mode networking, no ping paragraph');
  });

  test('each unit starts QEMU in svirt_t with its guest’s own pair, and names no AppArmor profile', () => {
    for (const g of a.guests) {
      const unit = file(`root/etc/systemd/system/qemu-${g.name}.service`)!;
      assert.ok(unit.split('\n').includes(`SELinuxContext=${processContext(pairs.get(g.name)!)}`), g.name);
      assert.doesNotMatch(unit, /AppArmorProfile=/);
      for (const line of selinux.unitLines(g, a).slice(1)) assert.ok(unit.split('\n').includes(line));
    }
  });

  test('the shared module holds the shared read-only content, each guest’s module its own files, each path once', () => {
    const shared = relabelPaths(file('root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil')!);
    assert.deepEqual(shared.sort(), ['/srv/boot/initrd.img', '/srv/boot/vmlinuz', '/srv/iso/shared.iso']);
    const web = relabelPaths(file('root/usr/share/selinux/packages/qemu-harden/qemu-harden-web.cil')!);
    assert.deepEqual(web.sort(), [
      TLS,
      '/run/qemu-harden/web',
      '/srv/qemu/web/disk "one" 100%.img',
      '/srv/qemu/web/seed.iso',
      '/var/lib/qemu-harden/web',
      '/var/log/qemu-harden/web',
    ]);
    // UEFI firmware under /usr keeps the distribution's label, which every virt domain reads.
    const db = relabelPaths(file('root/usr/share/selinux/packages/qemu-harden/qemu-harden-db.cil')!);
    assert.ok(!db.some((p) => p.startsWith('/usr/')), db.join(' '));
  });

  test('a folder QEMU’s 9p shares into a guest carries the guest’s pair, with what is in it: content if read-only, an image if writable', () => {
    const b = validate(WITH_DEVICES);
    const out = plan(b);
    const module = (g: string) =>
      String(out.find((f) => f.path === `root/usr/share/selinux/packages/qemu-harden/qemu-harden-${g}.cil`)!.content);
    const own = categoryPairs(b.guests);
    const cil = (g: string) => `(s0 (c${own.get(g)![0]} c${own.get(g)![1]}))`;
    for (const [g, path, type] of [
      ['web', '/srv/shares/web', 'virt_content_t'],
      ['db', '/srv/shares/db dumps', 'svirt_image_t'],
    ] as const) {
      const text = module(g);
      assert.ok(
        text
          .split('\n')
          .includes(
            `(filecon ${fileContextPath(path, '(/.*)?')} any (system_u object_r ${type} (${cil(g)} ${cil(g)})))`,
          ),
        text,
      );
      assert.ok(relabelPaths(text).includes(path), `${g}: ${path} is relabelled`);
      assert.ok(!relabelPaths(module(g === 'web' ? 'db' : 'web')).includes(path), 'and only by its own guest');
    }
    // QEMU serves them itself (9p): no helper unit.
    assert.deepEqual(
      out.filter((f) => /-fs\d+\./.test(f.path)).map((f) => f.path),
      [],
    );
    assert.match(
      String(out.find((f) => f.path === 'root/etc/systemd/system/qemu-db.service')!.content),
      /-virtfs "local,path=\/srv\/shares\/db dumps,mount_tag=dumps,security_model=mapped-xattr"/,
    );
  });

  test('a guest’s TPM runs in its guest’s context, and only a bundle with a helper’s socket (a TPM, passt) lets QEMU connect within a context', () => {
    const b = validate(WITH_DEVICES);
    const out = plan(b);
    const text = (fs: typeof files, path: string) => String(fs.find((f) => f.path === path)?.content ?? '');
    const unit = text(out, 'root/etc/systemd/system/qemu-db-tpm.service');
    assert.match(unit, new RegExp(`^SELinuxContext=${processContext(categoryPairs(b.guests).get('db')!)}$`, 'm'));
    assert.doesNotMatch(unit, /AppArmorProfile=/);
    const shared = 'root/usr/share/selinux/packages/qemu-harden/qemu-harden.cil';
    assert.match(text(out, shared), /^\(allow svirt_t self \(unix_stream_socket \(connectto\)\)\)$/m);
    assert.doesNotMatch(text(files, shared), /connectto|cert_t/);
  });

  test('apply loads exactly the modules', () => {
    const loaded = files
      .filter((f) => f.path.startsWith('root/') && selinux.loads.test(f.path.slice('root'.length)))
      .map((f) => f.path.slice('root'.length));
    assert.deepEqual(
      loaded.sort(),
      [...selinux.sharedFiles, ...a.guests.flatMap((g) => selinux.guestFiles(g.name))].sort(),
    );
  });
});

describe('relabelling names each path as itself', () => {
  test('setfiles, which reads its arguments through glob(3) as restorecon does, labels the disk and not its would-be match', () => {
    requireTool('setfiles', 'policycoreutils');
    const dir = guestFilesDir({ after }, 'qh-selinux-glob-');
    const disk = join(dir, 'g*a?m[1] x,y.img');
    const decoy = join(dir, 'gXaYm1 x,y.img');
    const spec = join(dir, 'file_contexts');
    const label = (path: string) => execFileSync('stat', ['--printf=%C', path], { encoding: 'utf8' });
    writeFileSync(
      spec,
      `${fileContextPath(disk).slice(1, -1)} system_u:object_r:svirt_image_t:s0:c1,c2\n${dir}/.* system_u:object_r:default_t:s0\n`,
    );
    const run = (arg: string) => {
      for (const f of [disk, decoy]) writeFileSync(f, '');
      execFileSync('chcon', ['system_u:object_r:var_t:s0', disk, decoy]);
      execFileSync('setfiles', ['-F', spec, arg]);
      return [label(disk), label(decoy)];
    };
    assert.deepEqual(run(literalGlob(disk)), [
      'system_u:object_r:svirt_image_t:s0:c1,c2',
      'system_u:object_r:var_t:s0',
    ]);
    // As it is written, the name is a pattern that matches the decoy and not itself.
    assert.deepEqual(run(disk), ['system_u:object_r:var_t:s0', 'system_u:object_r:default_t:s0']);
  });
});

describe('audit and status judge a QEMU’s SELinux context and its disks’ labels', () => {
  const dir = guestFilesDir({ after }, 'qh-selinux-labels-');
  const own = 'system_u:system_r:svirt_t:s0:c12,c345';
  const proc = (pid: number, label: string | undefined, disks: string[] = []): QemuProcess => {
    const argv = [
      '/usr/bin/qemu-system-x86_64',
      '-name',
      `guest=g${pid}`,
      ...disks.flatMap((d) => ['-drive', `file=${d},format=raw,if=virtio`]),
    ];
    return {
      ...commandLineOnly(pid, argv, parseCommandLine(argv), `g${pid}`),
      labels: label === undefined ? {} : { selinux: label },
    };
  };
  const check = (name: string) => selinux.auditChecks.find((c) => c.name === name)!;
  const found = (name: string, ps: QemuProcess[]) =>
    check(name)
      .run(viewOf(ps), () => POLICY)
      .map((f) => `${f.guest}: ${f.summary}`);

  test('a QEMU unconfined, in the virt domain without categories, or with every category, is reported', () => {
    assert.deepEqual(
      found('process.selinux', [
        proc(1, own),
        proc(2, 'unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023'),
        proc(3, 'system_u:system_r:svirt_t:s0'),
        proc(4, 'system_u:system_r:svirt_t:s0-s0:c0.c1023'),
        proc(5, undefined),
      ]),
      [
        'g2: not confined by SELinux (unconfined_t)',
        'g3: SELinux domain svirt_t without a category pair',
        'g4: SELinux domain svirt_t with 1024 categories, not a pair of its own',
      ],
    );
  });

  test('two QEMUs holding one pair are reported once, naming both', () => {
    const f = found('host.selinux-shared-pair', [
      proc(1, own),
      proc(2, own),
      proc(3, 'system_u:system_r:svirt_t:s0:c1,c2'),
    ]);
    assert.equal(f.length, 1);
    assert.match(f[0]!, /2 QEMUs share .* g1 \(pid 1\), g2 \(pid 2\)/);
  });

  test('status holds each guest to the context its installed unit names', () => {
    const unit = '[Service]\nUser=qemu-web\nSELinuxContext=system_u:system_r:svirt_t:s0:c12,c345\n';
    const { expectation } = fromUnit(unit, [], 'qemu-web', [
      { id: 'selinux', key: 'selinuxContext', enforced: true, expectedLabel: selinux.expectedLabel },
    ]);
    const judged = (label: string) =>
      check('process.selinux')
        .run(viewOf([proc(1, label)]), () => expectation)
        .map((f) => f.summary);
    assert.deepEqual(judged(own), []);
    assert.deepEqual(judged('system_u:system_r:svirt_t:s0:c1,c2'), [
      'SELinux context system_u:system_r:svirt_t:s0:c1,c2, not system_u:system_r:svirt_t:s0:c12,c345',
    ]);
  });

  test('a disk not labelled with its QEMU’s pair is reported; its own, or shared read-only content, is not', () => {
    requireTool('chcon', 'coreutils');
    const label = (name: string, context: string) => {
      const path = join(dir, name);
      writeFileSync(path, '');
      execFileSync('chcon', [context, path]);
      return path;
    };
    const mine = label('mine.img', 'system_u:object_r:svirt_image_t:s0:c12,c345');
    const open = label('open.img', 'system_u:object_r:svirt_image_t:s0');
    const theirs = label('theirs.img', 'system_u:object_r:svirt_image_t:s0:c1,c2');
    const f = check('process.selinux-image').run(viewOf([proc(1, own, [mine, open, theirs])]), () => POLICY);
    assert.deepEqual(
      f.map((x) => [x.severity, x.summary]),
      [
        [
          'high',
          `its disk ${open} is labelled system_u:object_r:svirt_image_t:s0, without its category pair: every guest’s QEMU may open it`,
        ],
        [
          'medium',
          `its disk ${theirs} is labelled system_u:object_r:svirt_image_t:s0:c1,c2, not with its own categories (${own})`,
        ],
      ],
    );
  });

  test('a folder QEMU’s 9p shares that does not carry its QEMU’s pair is reported; its own, or read-only content, is not', () => {
    requireTool('chcon', 'coreutils');
    const folder = (name: string, context: string) => {
      const path = join(dir, name);
      mkdirSync(path);
      execFileSync('chcon', [context, path]);
      return path;
    };
    const mine = folder('mine', 'system_u:object_r:svirt_image_t:s0:c12,c345');
    const open = folder('open', 'system_u:object_r:svirt_image_t:s0');
    const content = folder('content', 'system_u:object_r:virt_content_t:s0');
    const theirs = folder('theirs', 'system_u:object_r:virt_content_t:s0:c1,c2');
    const argv = [
      '/usr/bin/qemu-system-x86_64',
      '-virtfs',
      `local,path=${mine},mount_tag=out,security_model=mapped-xattr`,
      '-fsdev',
      `local,id=fs1,path=${open},security_model=mapped-xattr`,
      '-virtfs',
      `local,path=${content},mount_tag=docs,security_model=none,readonly=on`,
      '-fsdev',
      `local,id=fs3,path=${theirs},security_model=none,readonly`,
      // Not a folder of this host: another driver's, or no path.
      '-fsdev',
      'proxy,id=fs4,socket=/run/9p.sock',
    ];
    const cmd = parseCommandLine(argv);
    assert.deepEqual(
      cmd.shares.map((s) => [s.path, s.readOnly]),
      [
        [mine, false],
        [open, false],
        [content, true],
        [theirs, true],
      ],
    );
    const p: QemuProcess = { ...commandLineOnly(1, argv, cmd, 'g1'), labels: { selinux: own } };
    const f = check('process.selinux-share').run(viewOf([p]), () => POLICY);
    assert.deepEqual(
      f.map((x) => [x.severity, x.summary, x.answer]),
      [
        [
          'high',
          `its shared folder ${open} is labelled system_u:object_r:svirt_image_t:s0, without its category pair: every guest’s QEMU may open it`,
          'guests.N.shares',
        ],
        [
          'medium',
          `its shared folder ${theirs} is labelled system_u:object_r:virt_content_t:s0:c1,c2, not with its own categories (${own})`,
          'guests.N.shares',
        ],
      ],
    );
    assert.deepEqual(
      check('process.selinux-share').run(viewOf([{ ...p, labels: {} }]), () => POLICY),
      [],
    );
  });

  test('a folder a confined virtiofsd serves that does not carry its pair is reported; its own, or read-only content, is not', () => {
    requireTool('chcon', 'coreutils');
    const folder = (name: string, context: string) => {
      const path = join(dir, `vfs-${name}`);
      mkdirSync(path);
      execFileSync('chcon', [context, path]);
      return path;
    };
    const served = {
      mine: folder('mine', 'system_u:object_r:svirt_image_t:s0:c12,c345'),
      content: folder('content', 'system_u:object_r:virt_content_t:s0'),
      open: folder('open', 'system_u:object_r:svirt_image_t:s0'),
      theirs: folder('theirs', 'system_u:object_r:virt_content_t:s0:c1,c2'),
    };
    // What audit reads of a running virtiofsd: its command line, as the bundle's unit writes it (both spellings).
    const virtiofsd0 = virtiofsdKind(0);
    const virtiofsd = (pid: number, dirArgs: string[], readOnly: boolean, labels: Record<string, string>) => {
      const argv = [
        '/usr/libexec/virtiofsd',
        '--fd=3',
        ...dirArgs,
        '--sandbox=none',
        ...(readOnly ? ['--readonly'] : []),
      ];
      const live = virtiofsd0.live;
      const {
        cmd: _cmd,
        openFiles: _f,
        listeners: _l,
        unixSockets: _u,
        ...base
      } = commandLineOnly(pid, argv, parseCommandLine([]), 'virtiofsd');
      const h: HelperProcess = {
        ...base,
        labels,
        kind: 'fs0',
        ownSeccomp: live.ownSeccomp(argv),
        state: undefined,
        serves: live.serves!(argv),
      };
      return h;
    };
    const helpers = [
      virtiofsd(1, [`--shared-dir=${served.mine}`], false, { selinux: own }),
      virtiofsd(2, ['--shared-dir', served.content], true, { selinux: own }),
      virtiofsd(3, [`--shared-dir=${served.open}`], false, { selinux: own }),
      virtiofsd(4, ['--shared-dir', served.theirs], true, { selinux: own }),
      // Not confined by SELinux: nothing to judge here.
      virtiofsd(5, [`--shared-dir=${served.open}`], false, {}),
    ];
    assert.deepEqual(helpers[1]!.serves, [{ path: served.content, readOnly: true }]);
    const f = check('helper.selinux-share').run({ ...viewOf([]), helpers }, () => POLICY);
    assert.deepEqual(
      f.map((x) => [x.severity, x.summary, x.answer]),
      [
        [
          'high',
          `its shared folder ${served.open} is labelled system_u:object_r:svirt_image_t:s0, without its category pair: every guest’s QEMU may open it`,
          'guests.N.shares',
        ],
        [
          'medium',
          `its shared folder ${served.theirs} is labelled system_u:object_r:virt_content_t:s0:c1,c2, not with its own categories (${own})`,
          'guests.N.shares',
        ],
      ],
    );
  });

  test('a denial the kernel logs for a virt domain is read as the backend’s', async () => {
    const { parseDenial } = await import('../src/confine/selinux.js');
    const line =
      'audit: type=1400 audit(1.2:3): avc:  denied  { read write } for  pid=9 comm="qemu-system-x86" name="disk.img" dev="vda" ino=5 scontext=system_u:system_r:svirt_t:s0:c1,c2 tcontext=system_u:object_r:svirt_image_t:s0:c3,c4 tclass=file permissive=0';
    assert.deepEqual(parseDenial(line), {
      line,
      label: 'system_u:system_r:svirt_t:s0:c1,c2',
      operation: 'read write',
      name: 'disk.img',
      mask: 'file system_u:object_r:svirt_image_t:s0:c3,c4',
    });
    assert.equal(parseDenial(line.replace('svirt_t', 'httpd_t').replace('qemu-system-x86', 'httpd')), undefined);
  });

  test('verify counts the rules sesearch prints without a boolean, one permission or several', async () => {
    const { unconditionalRules } = await import('../src/confine/selinux.js');
    // As setools 4.4 prints them from Debian 12's policy.
    const out = [
      'allow init_t svirt_t:process transition;',
      'allow init_t virt_domain:process2 { nnp_transition nosuid_transition };',
      'allow svirt_t svirt_t:process { execmem execstack }; [ virt_use_execmem ]:True',
      '',
    ].join('\n');
    assert.deepEqual(unconditionalRules(out), [
      { cls: 'process', perms: ['transition'] },
      { cls: 'process2', perms: ['nnp_transition', 'nosuid_transition'] },
    ]);
  });
});
