// `qemu-harden import`: real libvirt and Proxmox files nobody here wrote (../shared/corpus), hostile XML, and the
// QEMU an imported guest's unit really starts, read back through QMP and compared with the source and with the
// command line libvirt or Proxmox itself generates for the same guest.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { writeBundle } from '../src/bundle.js';
import { guestService } from '../src/gen/systemd.js';
import type { Answers } from '../src/model.js';
import { plan } from '../src/plan.js';
import { tapDevice } from '../src/identity.js';
import { fromLibvirt } from '../src/sources/libvirt.js';
import { fromProxmox, parseStorageCfg, type Storage } from '../src/sources/proxmox.js';
import { exitStatus, renderReport, type ImportReport } from '../src/sources/report.js';
import { readBounded } from '../src/sources/common.js';
import { thisHost } from '../src/importcmd.js';
import { verifyBundle } from '../src/verify.js';
import { writeBootDisk } from './bootdisk.js';
import { cli, guestFilesDir, REPO, requireTool, stopChild, tempDir, waitUntil } from './helpers.js';
import { execStart, makeStopPipe } from './unitfile.js';
import { writeEsp } from './secureboot.js';
import { ensureKernel } from './vmboot.js';

const CORPUS = join(REPO, '..', 'shared', 'corpus');
/** What `import` hands the sources about this machine: its QEMU's CPU models, its sysfs, its own storage. */
const host = thisHost();
const LIBVIRT = join(CORPUS, 'libvirt');
const PROXMOX = join(CORPUS, 'proxmox');
const noTrace = (s: string) =>
  assert.doesNotMatch(s, /\n\s+at |node:internal|TypeError|RangeError|ReferenceError/, 'no stack trace');

function corpusFiles(dir: string, ext: string): string[] {
  if (!existsSync(dir))
    throw new Error(`${dir} is missing: the corpus is read from ../shared/corpus next to the repository`);
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => join(dir, f));
}

type Source = (files: string[]) => { document: unknown; report: ImportReport };
const input = (file: string) => ({ file, read: () => readFileSync(file, 'utf8') });

/** The operator's part of an import: a reason of their own wherever import asked for one. */
function withReasons(document: unknown): unknown {
  const doc = structuredClone(document) as { acceptedRisks: { reason: string }[] };
  for (const r of doc.acceptedRisks)
    if (/^<.*>$/.test(r.reason)) r.reason = 'the operator reviewed this device and gives it to this guest alone';
  return doc;
}

/** A domain with neither a disk nor a kernel is given one disk, so that its guest has something to boot. */
function withDisk(xml: string): string {
  if (/<disk[\s>]|<kernel>/.test(xml)) return xml;
  const disk =
    "<disk type='file' device='disk'><driver type='raw'/><source file='/srv/t.img'/><target dev='vda'/></disk>";
  return /<devices>/.test(xml)
    ? xml.replace(/<devices>/, `<devices>${disk}`)
    : xml.replace('</domain>', `<devices>${disk}</devices></domain>`);
}

/**
 * Import each file alone, check its outcome, then pack the imported ones into few sets as the cross-guest rules
 * allow (libvirt's tests reuse one disk path in many domains) and generate and verify one bundle per set.
 */
async function corpusProof(
  t: { diagnostic(s: string): void; after(fn: () => void): void },
  files: string[],
  source: Source,
  label: string,
) {
  const counts = { imported: 0, defaulted: 0, 'needs-reason': 0, refused: 0 };
  const importable: string[] = [];
  for (const file of files) {
    const { document, report } = source([file]);
    assert.equal(report.guests.length, 1, file);
    const g = report.guests[0]!;
    counts[g.outcome]++;
    for (const item of [...g.refused, ...g.defaulted, ...g.carried]) {
      assert.ok(
        item.source.length > 0 && item.source !== '(guest)',
        `${file}: every decision names its element or key (${item.message})`,
      );
      assert.ok(item.message.length > 5, `${file}: ${item.source} says why`);
      noTrace(item.message);
    }
    if (g.outcome === 'refused') {
      assert.ok(g.refused.length > 0, `${file}: a refusal lists what was refused`);
      assert.equal(document, null, `${file}: nothing to write for a refused guest`);
    } else {
      assert.equal(g.refused.length, 0);
      assert.equal(
        g.outcome === 'needs-reason',
        g.needsReason.length > 0,
        `${file}: "needs-reason" exactly when a risk waits for a person's reason`,
      );
      if (g.outcome !== 'needs-reason')
        assert.equal(
          g.outcome === 'defaulted',
          g.defaulted.length > 0,
          `${file}: "defaulted" exactly when something was left at the secure default`,
        );
      validate(withReasons(document));
      importable.push(file);
    }
  }
  // At most 12 guests per bundle: one `systemd-analyze verify` of all units stays well inside verify's own
  // time limit on a busy machine.
  const sets: string[][] = [];
  for (const file of importable) {
    const fit = sets.find((s) => s.length < 12 && source([...s, file]).report.outcome !== 'refused');
    if (fit) fit.push(file);
    else sets.push([file]);
  }
  const dir = guestFilesDir(t, 'qh-import-corpus-');
  let guests = 0;
  for (const [i, set] of sets.entries()) {
    const { document } = source(set);
    const answers = validate(withReasons(document));
    guests += answers.guests.length;
    const out = join(dir, `set-${i}`);
    writeBundle(out, plan(answers), false);
    const r = await verifyBundle(out);
    assert.deepEqual(r.findings, [], `${label} set ${i} (${set.join(', ')}): verify findings`);
    for (const c of r.checks)
      assert.equal(c.status, 'passed', `${label} set ${i}: ${c.check} ${c.status} ${c.detail ?? ''}`);
  }
  const line = `${label}: ${files.length} files — ${counts.imported} imported, ${counts.defaulted} imported with secure defaults, ${counts['needs-reason']} waiting for a reason, ${counts.refused} refused; ${guests} guests verified in ${sets.length} bundles`;
  t.diagnostic(line);
  console.log(line);
  assert.equal(guests, importable.length);
  return counts;
}

describe('the corpora: every file imports (and its bundle passes verify) or is refused naming the element or key', () => {
  test('libvirt domain XML', async (t) => {
    requireTool('systemd-analyze', 'systemd');
    requireTool('apparmor_parser', 'apparmor');
    const files = corpusFiles(LIBVIRT, '.xml');
    assert.ok(files.length > 50);
    const c = await corpusProof(t, files, (f) => fromLibvirt(f.map(input), { host }), 'libvirt');
    assert.ok(c.imported + c.defaulted > 0 && c.refused > 0);
    const noConf = join(tempDir(t, 'qh-noconf-'), 'qemu.conf');
    writeFileSync(noConf, '# libvirt defaults\n');
    const all = await cli(['import', 'libvirt', '--qemu-conf', noConf, ...files]);
    assert.equal(all.code, 2, 'the whole directory in one run: some guests are refused');
    noTrace(all.stdout + all.stderr);
    assert.match(
      all.stdout,
      new RegExp(
        `^${files.length} guests: ${c.imported} imported, ${c.defaulted} imported with secure defaults, ${c['needs-reason'] ? `${c['needs-reason']} waiting for a reason, ` : ''}${c.refused} refused\\.$`,
        'm',
      ),
    );
  });

  test('Proxmox VE configurations with their storage.cfg', async (t) => {
    requireTool('systemd-analyze', 'systemd');
    requireTool('apparmor_parser', 'apparmor');
    const storages = parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg');
    const files = corpusFiles(PROXMOX, '.conf');
    assert.ok(files.length > 50);
    const c = await corpusProof(t, files, (f) => fromProxmox(f.map(input), { storages, host }), 'proxmox');
    assert.ok(c.imported + c.defaulted > 0 && c.refused > 0);
    const all = await cli(['import', 'proxmox', '--storage-cfg', join(PROXMOX, 'storage.cfg'), ...files]);
    assert.equal(all.code, 2, 'the whole directory in one run: some guests are refused');
    noTrace(all.stdout + all.stderr);
    assert.match(
      all.stdout,
      new RegExp(
        `^${files.length} guests: ${c.imported} imported, ${c.defaulted} imported with secure defaults, ${c['needs-reason'] ? `${c['needs-reason']} waiting for a reason, ` : ''}${c.refused} refused\\.$`,
        'm',
      ),
    );
  });
});

describe('carried, defaulted and refused as the issue lists them', () => {
  const one = (xml: string, opts = {}) => {
    const r = fromLibvirt([{ file: 'test.xml', read: () => withDisk(xml) }], { host, ...opts });
    return {
      doc: r.document as { guests: Record<string, any>[]; acceptedRisks: unknown[] } | null,
      g: r.report.guests[0]!,
    };
  };
  const dom = (inner: string, attrs = "type='kvm'") =>
    `<domain ${attrs}><name>t</name><memory unit='MiB'>256</memory><vcpu>2</vcpu>${inner}</domain>`;
  const sources = (items: { source: string }[]) => items.map((i) => i.source);

  test('libvirt: limits as libvirt applies them on cgroup v2', () => {
    const { doc, g } = one(
      dom(`<cputune><shares>2048</shares><period>100000</period><quota>50000</quota></cputune>
           <memtune><hard_limit unit='MiB'>512</hard_limit><soft_limit unit='MiB'>384</soft_limit><swap_hard_limit unit='MiB'>1024</swap_hard_limit></memtune>
           <blkiotune><weight>800</weight><device><path>/dev/sda</path><read_bytes_sec>1000</read_bytes_sec></device></blkiotune>
           <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/srv/t.qcow2'/><target dev='vda' bus='virtio'/>
           <iotune><read_bytes_sec>5000</read_bytes_sec><write_iops_sec>60</write_iops_sec><total_bytes_sec>9</total_bytes_sec></iotune></disk></devices>`),
    );
    const l = doc!.guests[0]!.limits;
    assert.deepEqual(
      {
        cpuWeight: l.cpuWeight,
        cpuQuotaPercent: l.cpuQuotaPercent,
        memoryMaxMiB: l.memoryMaxMiB,
        memoryHighMiB: l.memoryHighMiB,
        ioWeight: l.ioWeight,
      },
      { cpuWeight: 2048, cpuQuotaPercent: 100, memoryMaxMiB: 512, memoryHighMiB: 384, ioWeight: 800 },
    );
    assert.deepEqual(l.ioBandwidth, [{ device: '/dev/sda', readBytesPerSecond: 1000 }]);
    assert.deepEqual(doc!.guests[0]!.disks[0].throttle, { readBytesPerSecond: 5000, writeIops: 60 });
    assert.ok(sources(g.defaulted).includes('memtune/swap_hard_limit'));
    assert.ok(sources(g.defaulted).includes('devices/disk[1]/iotune'), 'total_bytes_sec is reported, not carried');
    const v1 = one(dom('<cputune><shares>262144</shares></cputune>'));
    assert.equal(v1.doc!.guests[0]!.limits.cpuWeight, 10000, 'a cgroup v1-only value is converted on the 1024 scale');
  });

  test('libvirt: title or description becomes the one-line description, control characters dropped', () => {
    assert.equal(one(dom(`<title>Web &amp; mail&#10;second line</title>`)).doc!.guests[0]!.description, 'Web & mail');
    assert.equal(
      one(dom(`<description>\n  ${'x'.repeat(300)}\n</description>`)).doc!.guests[0]!.description,
      `${'x'.repeat(199)}…`,
    );
  });

  test('libvirt: disks in boot order', () => {
    const disk = (file: string, extra = '', device = 'disk') =>
      `<disk type='file' device='${device}'><driver type='raw'/><source file='${file}'/>${extra}</disk>`;
    const paths = (xml: string) => one(xml).doc!.guests[0]!.disks.map((d: { path: string }) => d.path);
    assert.deepEqual(
      paths(dom(`<devices>${disk('/srv/a')}${disk('/srv/b', "<boot order='1'/>")}${disk('/srv/c')}</devices>`)),
      ['/srv/b', '/srv/a', '/srv/c'],
    );
    assert.deepEqual(
      paths(
        dom(
          `<os><type machine='q35'>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os><devices>${disk('/srv/a')}${disk('/srv/i.iso', '<readonly/>', 'cdrom')}</devices>`,
        ),
      ),
      ['/srv/i.iso', '/srv/a'],
    );
  });

  test('libvirt: passt, the NAT network, port forwards and shared folders come over, each change named', () => {
    const passt = one(
      dom(`<devices><interface type='user'><backend type='passt'/>
             <portForward proto='tcp' address='192.0.2.7'><range start='2022' to='22'/><range start='8080' end='8081'/></portForward>
             <portForward proto='udp' address='192.0.2.7'><range start='5353'/></portForward></interface>
           <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/shares/t'/><target dir='data'/><readonly/></filesystem>
           <filesystem type='mount' accessmode='mapped'><source dir='/srv/shares/t-out'/><target dir='out'/></filesystem></devices>`),
    );
    const net = passt.doc!.guests[0]!.network;
    assert.deepEqual(net, {
      mode: 'user',
      backend: 'passt',
      forwards: [
        { protocol: 'tcp', listen: '192.0.2.7', port: 2022, guestPort: 22 },
        { protocol: 'tcp', listen: '192.0.2.7', port: 8080 },
        { protocol: 'tcp', listen: '192.0.2.7', port: 8081 },
        { protocol: 'udp', listen: '192.0.2.7', port: 5353 },
      ],
    });
    assert.deepEqual(passt.doc!.guests[0]!.shares, [
      { path: '/srv/shares/t', tag: 'data', readOnly: true },
      { path: '/srv/shares/t-out', tag: 'out', readOnly: false },
    ]);
    assert.ok(sources(passt.g.carried).includes('devices/interface[1]/backend@type'));
    assert.ok(sources(passt.g.defaulted).includes('devices/filesystem[2]@accessmode'));
    assert.match(
      JSON.stringify(passt.doc!.acceptedRisks),
      /"risk":"share-writable".*the guest writes \/srv\/shares\/t-out/,
    );

    const nat = one(dom(`<devices><interface type='network'><source network='default'/></interface></devices>`));
    assert.deepEqual(nat.doc!.guests[0]!.network, { mode: 'user', backend: 'passt' });
    const change = nat.g.defaulted.find((i) => i.source === 'devices/interface[1]/source@network');
    assert.match(
      change!.message,
      /libvirt network "default".*becomes user-mode networking from passt.*no longer on that network/,
    );

    const slirp = one(dom(`<devices><interface type='user'/></devices>`));
    assert.deepEqual(slirp.doc!.guests[0]!.network, { mode: 'user', backend: 'passt' });
    assert.match(
      slirp.g.defaulted.find((i) => i.source === 'devices/interface[1]')!.message,
      /inside QEMU \(slirp\) becomes passt/,
    );
  });

  test('libvirt: refusals name the element and say why', () => {
    const cases: [string, string, RegExp][] = [
      [
        dom(`<devices><disk type='network'><source protocol='rbd' name='p/i'/></disk></devices>`),
        'devices/disk[1]/source@protocol',
        /network disk \(rbd p\/i\)/,
      ],
      [dom(`<devices><interface type='direct'/></devices>`), 'devices/interface[1]@type', /macvtap/],
      [dom(`<devices><interface type='vhostuser'/></devices>`), 'devices/interface[1]@type', /vhost-user/],
      [dom(`<devices><filesystem type='mount'/></devices>`), 'devices/filesystem[1]/source@dir', /host directory/],
      [
        dom(`<devices><filesystem type='block'><source dev='/dev/sdb'/><target dir='t'/></filesystem></devices>`),
        'devices/filesystem[1]@type',
        /only a host directory/,
      ],
      [
        dom(
          `<devices><interface type='user'><backend type='passt'/><portForward proto='tcp'><range start='2000' end='2010' exclude='yes'/></portForward></interface></devices>`,
        ),
        'devices/interface[1]/portForward[1]/range[1]@exclude',
        /excluded ranges/,
      ],
      [
        dom(
          `<devices><tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm></devices>`,
        ),
        'devices/tpm[1]/backend@type',
        /host’s own TPM/,
      ],
      [
        dom(`<devices><tpm model='tpm-tis'><backend type='emulator' version='1.2'/></tpm></devices>`),
        'devices/tpm[1]/backend@version',
        /TPM 2\.0 only/,
      ],
      [
        dom(`<devices><tpm model='tpm-tis'><backend type='emulator'/></tpm></devices>`),
        'devices/tpm[1]/backend@version',
        /not known/,
      ],
      [
        dom(
          `<devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'><encryption secret='6dd3e4a5-1d76-44ce-961f-f119f5aad935'/></backend></tpm></devices>`,
        ),
        'devices/tpm[1]/backend/encryption',
        /libvirt secret/,
      ],
      [dom(`<launchSecurity type='sev'/>`), 'launchSecurity', /confidential/],
      [
        dom(
          `<qemu:commandline><qemu:arg value='-no-sandbox'/></qemu:commandline>`,
          "type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
        ),
        'qemu:commandline',
        /straight to QEMU/,
      ],
      [
        dom(
          `<q:commandline><q:arg value='-x'/></q:commandline>`,
          "type='kvm' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'",
        ),
        'q:commandline',
        /straight to QEMU/,
      ],
      [
        dom(
          `<os><type machine='pc'>hvm</type><loader secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader></os>`,
        ),
        'os/loader@secure',
        /firmware\.secureBoot: needs a q35 machine type \(is "pc"\)/,
      ],
      [
        dom(`<devices><disk type='file'><driver type='vmdk'/><source file='/srv/a.vmdk'/></disk></devices>`),
        'devices/disk[1]/driver@type',
        /format "vmdk"/,
      ],
      [
        dom(`<devices><disk type='file'><source file='etc/relative.img'/></disk></devices>`),
        'devices/disk[1]/source',
        /must be an absolute path/,
      ],
    ];
    for (const [xml, where, why] of cases) {
      const { doc, g } = one(xml);
      assert.equal(g.outcome, 'refused', where);
      assert.equal(doc, null);
      const item = g.refused.find((i) => i.source === where);
      assert.ok(item, `${where} named among ${JSON.stringify(g.refused)}`);
      assert.match(item.message, why);
    }
  });

  test('libvirt: the QEMU namespace is refused in every form, exit 2', async (t) => {
    const NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
    const dir = guestFilesDir(t, 'qh-qemu-ns-');
    const forms: [label: string, xml: string, element: string][] = [
      [
        'prefix on the domain',
        dom(`<qemu:commandline><qemu:arg value='-no-sandbox'/></qemu:commandline>`, `type='kvm' xmlns:qemu='${NS}'`),
        'qemu:commandline',
      ],
      [
        'another prefix on the domain',
        dom(`<q:commandline><q:arg value='-x'/></q:commandline>`, `type='kvm' xmlns:q='${NS}'`),
        'q:commandline',
      ],
      [
        'prefix on the element',
        dom(`<qemu:commandline xmlns:qemu='${NS}'><qemu:arg value='-no-sandbox'/></qemu:commandline>`),
        'qemu:commandline',
      ],
      [
        'default namespace on the element',
        dom(`<commandline xmlns='${NS}'><arg value='-no-sandbox'/></commandline>`),
        'commandline',
      ],
      [
        'property overrides',
        dom(
          `<qemu:override xmlns:qemu='${NS}'><qemu:device alias='ua-x'><qemu:frontend><qemu:property name='x' type='string' value='y'/></qemu:frontend></qemu:device></qemu:override>`,
        ),
        'qemu:override',
      ],
    ];
    for (const [n, [label, xml, element]] of forms.entries()) {
      const { doc, g } = one(xml);
      assert.equal(g.outcome, 'refused', label);
      assert.equal(doc, null, label);
      const item = g.refused.find((i) => i.source === element);
      assert.ok(item, `${label}: <${element}> named among ${JSON.stringify(g.refused)}`);
      assert.match(item.message, /libvirt's QEMU namespace.*straight to QEMU/, label);
      const file = join(dir, `form-${n}.xml`);
      writeFileSync(file, withDisk(xml));
      const r = await cli(['import', 'libvirt', file]);
      assert.equal(r.code, 2, `${label}: exit ${r.code}\n${r.stdout}`);
      assert.match(r.stdout, new RegExp(`${element}: is in libvirt's QEMU namespace`), label);
    }
    // An element of another namespace is not QEMU's: reported as not carried, never silently dropped.
    const other = one(dom(`<x:extra xmlns:x='http://example.com/x'/>`));
    assert.ok(
      other.g.defaulted.some((i) => i.source === 'x:extra'),
      JSON.stringify(other.g),
    );
  });

  test('libvirt: weaker-than-default settings are not carried silently', () => {
    const vnc = one(dom(`<devices><graphics type='vnc' port='5901' listen='0.0.0.0' passwd='secret'/></devices>`));
    assert.deepEqual(vnc.doc!.guests[0]!.display, { mode: 'vnc-unix' });
    assert.match(
      vnc.g.defaulted.find((i) => i.source === 'devices/graphics[1]')!.message,
      /0\.0\.0\.0:5901 without TLS.*unix socket/,
    );
    assert.ok(sources(vnc.g.defaulted).includes('devices/graphics[1]@passwd'));
    assert.doesNotMatch(JSON.stringify(vnc.doc), /secret/, 'the VNC password never reaches the answers');
    const conf = {
      vncTls: true,
      vncTlsDir: '/etc/pki/libvirt-vnc',
      vncListen: '127.0.0.1',
      spiceTls: false,
      spiceTlsDir: '/x',
      spiceListen: '127.0.0.1',
      migrateTlsForce: false,
    };
    const tls = one(dom(`<devices><graphics type='vnc' port='5901' listen='0.0.0.0'/></devices>`), {
      qemuConf: conf,
      qemuConfFile: 'qemu.conf',
    });
    assert.deepEqual(tls.doc!.guests[0]!.display, {
      mode: 'vnc-tls',
      listen: '0.0.0.0',
      port: 5901,
      tlsDir: '/etc/pki/libvirt-vnc',
    });
    assert.ok(sources(tls.g.defaulted).includes('qemu.conf: migrate_tls_force'), 'migration without TLS is reported');
    assert.equal(tls.doc!.guests[0]!.migration, undefined);
  });

  test('QEMU options removed since Debian 12 become what replaced them, each named with the release; the rest is refused naming it', async (t) => {
    const pve = (text: string) => {
      const r = fromProxmox(
        [{ file: '/etc/pve/qemu-server/7.conf', read: () => `memory: 512\nvirtio0: /srv/a.raw\n${text}` }],
        {
          host,
        },
      );
      return { r, doc: r.document as { guests: Record<string, any>[] } | null, g: r.report.guests[0]! };
    };
    // What Proxmox's own documentation gave as the example of args: until 2023 ("-no-reboot -no-hpet"), and the rest
    // of what QEMU has removed since Debian 12's 7.2 that the answers or the bundle say instead.
    const ok = pve("args: -no-hpet -no-acpi -runas nobody -chroot '/var/empty'\n");
    assert.equal(ok.g.outcome, 'imported', JSON.stringify(ok.g));
    assert.equal(ok.doc!.guests[0]!.hpet, false);
    assert.equal(ok.doc!.guests[0]!.acpi, false);
    const translated = ok.g.carried.filter((i) => i.source === 'args');
    assert.deepEqual(
      translated.map((i) => [i.removed?.option, i.removed?.removedIn, i.removed?.instead]),
      [
        ['-no-hpet', '9.0', '-machine hpet=off'],
        ['-no-acpi', '9.0', '-machine acpi=off'],
        ['-runas', '10.0', '-run-with user=USER'],
        ['-chroot', '9.0', '-run-with chroot=DIR'],
      ],
    );
    assert.match(
      translated[0]!.message,
      /^-no-hpet → hpet: false, which the bundle writes as -machine hpet=off \(QEMU deprecated -no-hpet in 8\.0 and removed it in 9\.0: Debian 13 "trixie" \(QEMU 10\.0\) refuses to start with it/,
    );
    assert.match(translated[1]!.message, /does not hear the power button its unit presses/);
    assert.match(
      translated[2]!.message,
      /^-runas nobody → not needed: each guest’s unit starts QEMU as the guest’s own system user/,
    );
    assert.match(
      translated[3]!.message,
      /^-chroot \/var\/empty → not needed: each guest’s unit gives QEMU a file-system view of its own/,
    );
    const answers = validate(ok.doc);
    const unit = guestService(answers, answers.guests[0]!);
    const argv = execStart(unit);
    assert.match(argv[argv.indexOf('-machine') + 1]!, /^pc,acpi=off,hpet=off,/);
    assert.ok(
      !argv.some((a) => /^-(no-hpet|no-acpi|runas|chroot)$/.test(a)),
      'none of the removed options reaches QEMU',
    );
    assert.match(unit, /which this guest, having no ACPI, does not hear/);

    const bad = pve(
      'args: -no-hpet -async-teardown -device virtio-blk-pci,drive=d,scsi=off -spice port=5900,password=hunter2 -no-sandbox\n',
    );
    assert.equal(bad.g.outcome, 'refused');
    assert.equal(bad.doc, null);
    assert.deepEqual(
      bad.g.refused.map((i) => [i.source, i.removed?.option]),
      [
        ['args', '-async-teardown'],
        ['args', '-device virtio-blk,scsi=on|off'],
        ['args', '-spice password='],
        ['args', undefined],
      ],
    );
    const [teardown, device, spice, other] = bad.g.refused.map((i) => i.message);
    assert.match(teardown!, /^-async-teardown: asynchronous teardown starts a second process .*removed it in 9\.0/);
    assert.match(
      device!,
      /^-device virtio-blk-pci,drive=d,scsi=off: passes options straight to QEMU.*removed it in 9\.1/,
    );
    assert.match(
      spice!,
      /^-spice port=5900,password=\(redacted\): passes options straight to QEMU.*removed it in 8\.0: Debian 13 .* and Ubuntu 24\.04 .* refuse to start with it/,
    );
    assert.match(other!, /^-no-sandbox: passes options straight to QEMU/);
    assert.doesNotMatch(JSON.stringify(bad.r.report), /hunter2/, 'a password on the command line is never shown');
    assert.match(pve(`args: -no-hpet 'unclosed\n`).g.refused[0]!.message, /unclosed quote.*passes QEMU none/);
    const noAcpi = pve('acpi: 0\n');
    assert.equal(noAcpi.doc!.guests[0]!.acpi, false);
    assert.match(
      noAcpi.g.carried.find((i) => i.source === 'acpi')!.message,
      /acpi: false, which the bundle writes as -machine acpi=off/,
    );
    assert.equal(pve('acpi: 1\n').doc!.guests[0]!.acpi, undefined);

    // libvirt: <qemu:commandline> with nothing but such options is translated; anything else in it refuses it.
    const NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
    const withAcpi = (inner: string) =>
      one(dom(`<features><acpi/></features>${inner}`, `type='kvm' xmlns:qemu='${NS}'`));
    const lv = withAcpi(
      `<qemu:commandline><qemu:arg value='-no-hpet'/><qemu:arg value='-runas'/><qemu:arg value='libvirt-qemu'/></qemu:commandline>`,
    );
    assert.equal(lv.g.outcome, 'imported', JSON.stringify(lv.g));
    assert.equal(lv.doc!.guests[0]!.hpet, false);
    assert.equal(lv.doc!.guests[0]!.acpi, undefined, '<acpi/> present: ACPI on');
    assert.deepEqual(
      lv.g.carried.filter((i) => i.removed).map((i) => [i.source, i.removed!.option]),
      [
        ['qemu:commandline/qemu:arg[1]@value', '-no-hpet'],
        ['qemu:commandline/qemu:arg[2]@value', '-runas'],
      ],
    );
    for (const [inner, why] of [
      [
        `<qemu:commandline><qemu:arg value='-no-hpet'/><qemu:arg value='-async-teardown'/></qemu:commandline>`,
        /-async-teardown: asynchronous teardown/,
      ],
      [
        `<qemu:commandline><qemu:arg value='-no-hpet'/><qemu:env name='X' value='y'/></qemu:commandline>`,
        /straight to QEMU/,
      ],
      [`<qemu:commandline><qemu:arg value='-no-hpet'/><qemu:arg value='-S'/></qemu:commandline>`, /straight to QEMU/],
    ] as const) {
      const r = withAcpi(inner);
      assert.equal(r.g.outcome, 'refused', inner);
      assert.match(r.g.refused.find((i) => i.source === 'qemu:commandline')!.message, why, inner);
    }

    // What libvirt itself once passed as -no-acpi and -no-hpet: no <acpi/> in <features>, and the HPET timer off.
    const native = one(dom(`<clock offset='utc'><timer name='hpet' present='no'/></clock>`));
    assert.equal(native.doc!.guests[0]!.acpi, false);
    assert.equal(native.doc!.guests[0]!.hpet, false);
    assert.ok(
      sources(native.g.carried).includes('features') && sources(native.g.carried).includes('clock/timer[1]@present'),
    );

    // The text report names each translation.
    const file = join(tempDir(t, 'qh-removed-'), '7.conf');
    writeFileSync(file, 'memory: 512\nvirtio0: /srv/a.raw\nargs: -no-hpet\n');
    const r = await cli(['import', 'proxmox', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^ {4}args: -no-hpet → hpet: false, which the bundle writes as -machine hpet=off \(QEMU deprecated -no-hpet in 8\.0 and removed it in 9\.0/m,
    );
  });

  test('libvirt corpus: every imported domain has ACPI and the HPET as libvirt’s own command line for it has them', () => {
    let checked = 0;
    for (const xml of corpusFiles(LIBVIRT, '.xml')) {
      const args = xml.replace(/\.xml$/, '.args');
      if (!existsSync(args)) continue;
      const doc = fromLibvirt([input(xml)], { host }).document as { guests: Record<string, unknown>[] } | null;
      if (!doc) continue;
      const machine = /(?:^|\s)-machine '?([^ ']+)/.exec(readFileSync(args, 'utf8'))![1]!.split(',');
      const g = doc.guests[0]!;
      assert.equal(
        g.acpi === false,
        machine.includes('acpi=off'),
        `${xml}: acpi ${String(g.acpi)}, libvirt: ${machine}`,
      );
      assert.equal(
        g.hpet === false,
        machine.includes('hpet=off'),
        `${xml}: hpet ${String(g.hpet)}, libvirt: ${machine}`,
      );
      checked++;
    }
    assert.ok(checked >= 15, `${checked} domains checked against libvirt's command line`);
  });

  test('PCI and USB host devices: carried with their IOMMU group from sysfs; the risk waits for a reason only a person writes', async (t) => {
    // A sysfs tree laid out as the kernel's: /sys/bus/pci/devices/ADDR/iommu_group -> .../iommu_groups/N.
    const sys = tempDir(t, 'qh-sysfs-');
    const devices = join(sys, 'bus/pci/devices');
    mkdirSync(devices, { recursive: true });
    for (const [addr, group] of [
      ['0000:06:12.1', 14],
      ['0000:06:12.2', 14],
      ['0000:06:12.3', 14],
      ['0000:06:12.4', 15],
      ['0000:00:ff.1', 3],
      ['0000:d0:13.0', 9],
    ] as const) {
      mkdirSync(join(sys, 'kernel/iommu_groups', String(group)), { recursive: true });
      mkdirSync(join(devices, addr));
      symlinkSync(join(sys, 'kernel/iommu_groups', String(group)), join(devices, addr, 'iommu_group'));
    }
    const v = fromLibvirt([input(join(LIBVIRT, 'hostdev-vfio.xml'))], { host: thisHost({ sysfsPci: devices }) });
    const doc = v.document as {
      guests: Record<string, any>[];
      acceptedRisks: { risk: string; guest: string; reason: string }[];
    };
    assert.deepEqual(doc.guests[0]!.passthrough.pci, [
      { address: '0000:06:12.1', iommuGroup: 14 },
      { address: '0000:06:12.2', iommuGroup: 14 },
      { address: '0000:06:12.3', iommuGroup: 14 },
      { address: '0000:06:12.4', iommuGroup: 15 },
    ]);
    assert.deepEqual(
      doc.acceptedRisks.map((r) => [r.risk, r.guest]),
      [['pci-passthrough', 'qemuguest2']],
    );
    // No reason is made up on the operator's behalf: the answers carry a request naming every device, which the
    // schema refuses until a person replaces it.
    const request = doc.acceptedRisks[0]!.reason;
    assert.match(request, /^<write here, in your own words, why guest qemuguest2 may take the risk "pci-passthrough"/);
    assert.match(request, /0000:06:12\.1 \(IOMMU group 14\).*0000:06:12\.4 \(IOMMU group 15\)>$/);
    const g = v.report.guests[0]!;
    assert.equal(g.outcome, 'needs-reason');
    assert.equal(exitStatus(v.report.outcome), 1);
    assert.deepEqual(
      g.needsReason.map((i) => [i.source, i.answer]),
      [['devices/hostdev[1]', 'acceptedRisks.0.reason']],
    );
    assert.throws(
      () => validate(doc),
      /acceptedRisks\.0\.reason: is still the request import wrote in angle brackets; replace it/,
    );
    doc.acceptedRisks[0]!.reason = 'the NIC is dedicated to this guest and reviewed by the operator';
    const bundle = join(sys, 'bundle');
    writeBundle(bundle, plan(validate(doc)), false);
    const checked = await verifyBundle(bundle);
    assert.deepEqual(checked.findings, [], 'the passthrough guest’s bundle passes verify once the reason is written');

    // The same through the command line: the file is written, exit 1, and the report says exactly what to add;
    // generate refuses the file until the reason is there.
    const dir = guestFilesDir(t, 'qh-usb-import-');
    const usbXml = join(dir, 'usb.xml');
    writeFileSync(
      usbXml,
      `<domain type='kvm'><name>u</name><memory unit='MiB'>64</memory><devices><disk type='file' device='disk'><driver type='raw'/><source file='/srv/u.img'/><target dev='vda'/></disk><hostdev mode='subsystem' type='usb'><source><vendor id='0x1D6B'/><product id='0x0002'/></source></hostdev></devices></domain>`,
    );
    const out = join(dir, 'answers.json');
    const r = await cli(['import', 'libvirt', usbXml, '--out', out]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /needs your reason.*:\n {4}devices\/hostdev\[1\]: the risk "usb-passthrough" .*\(acceptedRisks\.0\.reason\)/s,
    );
    assert.match(r.stdout, /replace the request in angle brackets at acceptedRisks\.0\.reason\./);
    const written = JSON.parse(readFileSync(out, 'utf8')) as {
      guests: Record<string, any>[];
      acceptedRisks: { reason: string }[];
    };
    assert.deepEqual(written.guests[0]!.passthrough.usb, [{ vendorId: '1d6b', productId: '0002' }]);
    assert.match(written.acceptedRisks[0]!.reason, /^<write here, in your own words, .*USB device 1d6b:0002>$/);
    const refused = await cli(['generate', '--answers', out, '--out', join(dir, 'bundle')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /acceptedRisks\.0\.reason: is still the request import wrote/);
    assert.ok(!existsSync(join(dir, 'bundle')), 'no bundle without the reason');
    written.acceptedRisks[0]!.reason = 'a hardware key the operator gave to this guest';
    writeFileSync(out, JSON.stringify(written));
    const gen = await cli(['generate', '--answers', out, '--out', join(dir, 'bundle')]);
    assert.equal(gen.code, 0, gen.stderr);
    const p = fromProxmox([input(join(PROXMOX, 'q35-linux-hostpci.conf'))], {
      host: thisHost({ sysfsPci: devices }),
      storages: parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg'),
    });
    const pg = p.report.guests[0]!;
    assert.equal(pg.outcome, 'refused', 'hostpci2 (00:f4.0) is not in this sysfs');
    assert.deepEqual(
      pg.refused.map((i) => i.source),
      ['hostpci2', 'hostpci3', 'hostpci4', 'hostpci7'],
    );
    assert.ok(pg.carried.some((i) => i.source === 'hostpci0' && /0000:00:ff\.1 \(IOMMU group 3\)/.test(i.message)));
    // Two guests with devices of one IOMMU group: the answers' own rule refuses the pair.
    const two = fromLibvirt(
      [
        input(join(LIBVIRT, 'hostdev-vfio.xml')),
        {
          file: 'other.xml',
          read: () =>
            readFileSync(join(LIBVIRT, 'hostdev-pci-address.xml'), 'utf8').replace(
              "bus='0x06' slot='0x12' function='0x5'",
              "bus='0x06' slot='0x12' function='0x2'",
            ),
        },
      ],
      { host: thisHost({ sysfsPci: devices }) },
    );
    assert.equal(two.report.outcome, 'refused');
    assert.ok(
      two.report.problems.some((m) =>
        /already passed through to guest "qemuguest2"|IOMMU group 14 already belongs/.test(m),
      ),
      JSON.stringify(two.report.problems),
    );
  });

  test('Proxmox: keys refused, defaulted and carried', () => {
    const storages = parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg');
    const pve = (text: string, s: Map<string, Storage> | null = storages) => {
      const r = fromProxmox([{ file: '/etc/pve/qemu-server/123.conf', read: () => text }], {
        host,
        storages: s ?? undefined,
      });
      return { doc: r.document as { guests: Record<string, any>[] } | null, g: r.report.guests[0]! };
    };
    const refused: [string, string, RegExp][] = [
      ['args: -no-sandbox\n', 'args', /straight to QEMU/],
      ['hookscript: local:snippets/h.pl\n', 'hookscript', /host script/],
      ['lock: backup\n', 'lock', /locked/],
      ['scsi0: rbd-store:vm-123-disk-0,size=1G\n', 'scsi0', /Ceph RBD, a network disk/],
      ['scsi0: zfs-over-iscsi-store:vm-123-disk-0,size=1G\n', 'scsi0', /iSCSI/],
      ['tpmstate0: local:123/vm-123-disk-1.raw,size=4M\n', 'tpmstate0', /TPM/],
      ['net0: virtio=52:54:00:12:34:56,bridge=vmbr0,tag=5\n', 'net0', /VLAN/],
      ['scsi0: local:123/vm-123-disk-0.qcow2\n', 'scsi0', /resolve|storage.cfg/],
    ];
    for (const [text, key, why] of refused) {
      const { doc, g } = pve(text, key === 'scsi0' && /qcow2\n$/.test(text) ? null : storages);
      assert.equal(g.outcome, 'refused', key);
      assert.equal(doc, null);
      assert.match(g.refused.find((i) => i.source === key)?.message ?? '', why, `${key}: ${JSON.stringify(g.refused)}`);
    }
    const { doc, g } = pve(
      [
        '#a description',
        'name: Web.Server_01',
        'memory: 768',
        'cores: 2',
        'sockets: 2',
        'cpulimit: 1.5',
        'cpuunits: 200',
        'machine: pc-q35-9.0+pve1',
        'boot: order=scsi0;ide2;net0',
        'scsi0: local:123/vm-123-disk-0.qcow2,mbps_rd=2,iops_wr=100,size=1G',
        'ide2: local:iso/debian.iso,media=cdrom',
        'ide0: local:123/vm-123-cloudinit.qcow2,media=cdrom',
        'net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1',
        'vga: qxl',
        'ciuser: admin',
        '',
        '[PENDING]',
        'memory: 4096',
        '',
        '[before-upgrade]',
        'memory: 512',
        'snaptime: 1700000000',
      ].join('\n'),
    );
    assert.equal(g.outcome, 'defaulted');
    const guest = doc!.guests[0]!;
    assert.equal(guest.name, 'web-server-01');
    assert.equal(guest.description, 'a description');
    assert.equal(guest.memoryMiB, 768, 'the current configuration, not [PENDING] or the snapshot');
    assert.equal(guest.vcpus, 4);
    assert.equal(guest.machine, 'pc-q35-9.0');
    assert.deepEqual(guest.limits, { cpuQuotaPercent: 150, cpuWeight: 200 });
    assert.deepEqual(guest.disks, [
      {
        path: '/var/lib/vz/images/123/vm-123-disk-0.qcow2',
        format: 'qcow2',
        readOnly: false,
        blockDevice: false,
        throttle: { readBytesPerSecond: 2 * 1024 * 1024, writeIops: 100 },
      },
      { path: '/var/lib/vz/template/iso/debian.iso', format: 'raw', readOnly: true, blockDevice: false },
    ]);
    assert.deepEqual(
      guest.network,
      { mode: 'tap', bridge: 'vmbr0', vhost: true, mac: 'bc:24:11:00:00:01' },
      'the guest keeps its MAC, Proxmox’s own prefix included',
    );
    for (const k of ['[PENDING]', '[before-upgrade]', 'ide0', 'net0', 'vga', 'ciuser'])
      assert.ok(sources(g.defaulted).includes(k), `${k} reported as left at the secure default`);
  });
});

describe('hostile files: clear errors, fast, no stack trace', () => {
  test('billion laughs, external entity, undefined entity, 50 MB, deep nesting, bad names', async (t) => {
    const dir = guestFilesDir(t, 'qh-hostile-');
    const files: [string, string | (() => void), RegExp, number][] = [
      [
        'laughs.xml',
        `<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>\n<domain type='kvm'><name>&lol2;</name></domain>`,
        /<!DOCTYPE> is refused/,
        2,
      ],
      [
        'xxe.xml',
        `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/shadow">]><domain type='kvm'><name>&x;</name></domain>`,
        /<!DOCTYPE> is refused/,
        2,
      ],
      [
        'undefined.xml',
        `<domain type='kvm'><name>&x;</name></domain>`,
        /"&x;" is not one of XML's predefined entities/,
        2,
      ],
      [
        'deep.xml',
        `<domain type='kvm'><name>d</name><metadata>${'<x>'.repeat(100_000)}${'</x>'.repeat(100_000)}</metadata></domain>`,
        /nest deeper than 48 levels/,
        2,
      ],
      ['broken.xml', `<domain type='kvm'><name>d</name>`, /not well-formed XML \(line 1/, 2],
      ['notdomain.xml', `<network><name>d</name></network>`, /document element must be <domain>/, 2],
      [
        'badname.xml',
        `<domain type='kvm'><name>../../etc/passwd; rm -rf /</name><memory unit='MiB'>64</memory><devices><disk type='file' device='disk'><driver type='raw'/><source file='/srv/badname.img'/><target dev='vda'/></disk></devices></domain>`,
        /mapped to "etc-passwd-rm-rf"/,
        0,
      ],
      [
        'Ünïcödé.xml',
        `<domain type='kvm'><name>ÄÖÜ</name><memory unit='MiB'>64</memory><devices><disk type='file' device='disk'><driver type='raw'/><source file='/srv/unicode.img'/><target dev='vda'/></disk></devices></domain>`,
        /mapped to "n-c-d"/,
        0,
      ],
    ];
    const big = join(dir, 'big.xml');
    writeFileSync(
      big,
      `<domain type='kvm'><name>big</name><description>${'a'.repeat(50 * 1024 * 1024)}</description></domain>`,
    );
    const all: [string, RegExp, number][] = [
      ...files.map(([name, content, re, code]) => {
        writeFileSync(join(dir, name), content as string);
        return [join(dir, name), re, code] as [string, RegExp, number];
      }),
      [big, /52428\d+ bytes is too large for a domain XML file \(at most 1048576 bytes\)/, 2],
    ];
    for (const [file, re, code] of all) {
      const t0 = performance.now();
      const { report } = fromLibvirt([{ file, read: () => readBounded(file, 'a domain XML file') }], { host });
      const ms = performance.now() - t0;
      assert.ok(ms < 250, `${file}: ${ms.toFixed(0)} ms to read, check and refuse or import`);
      assert.equal(exitStatus(report.outcome), code, `${file}: ${JSON.stringify(report.guests[0])}`);
      const r = await cli(['import', 'libvirt', file]);
      assert.equal(r.code, code, `${file}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, re, file);
      noTrace(r.stdout + r.stderr);
    }
    const names = await cli(['import', 'libvirt', '--json', join(dir, 'badname.xml')]);
    const rep = JSON.parse(names.stdout) as ImportReport;
    assert.equal(rep.guests[0]!.name, 'etc-passwd-rm-rf');
    assert.equal(rep.guests[0]!.sourceName, '../../etc/passwd; rm -rf /');
  });

  test('a Proxmox file that is not a configuration, and a storage.cfg that is not one', async (t) => {
    const dir = guestFilesDir(t, 'qh-hostile-pve-');
    const bad = join(dir, '100.conf');
    writeFileSync(bad, 'memory: 512\nthis is not a key line\n');
    const r = await cli(['import', 'proxmox', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /\(document\): line 2: not a "key: value" line/);
    const dup = join(dir, '101.conf');
    writeFileSync(dup, 'net0: virtio=52:54:00:00:00:01,bridge=vmbr0,bridge=vmbr1\n');
    assert.match((await cli(['import', 'proxmox', dup])).stdout, /net0: duplicate key "bridge"/);
    const cfg = join(dir, 'storage.cfg');
    writeFileSync(cfg, 'garbage\n');
    const s = await cli(['import', 'proxmox', '--storage-cfg', cfg, bad]);
    assert.equal(s.code, 2);
    assert.match(s.stderr, /storage\.cfg:1: not a storage header/);
    noTrace(r.stdout + r.stderr + s.stdout + s.stderr);
  });
});

describe('the import command', () => {
  test('--out is written atomically only when every guest imports; exit 0/1/2; --json shape', async (t) => {
    const dir = guestFilesDir(t, 'qh-import-cli-');
    const out = join(dir, 'answers.json');
    const headless = join(LIBVIRT, 'x86_64-q35-headless.xml');
    const refused = join(LIBVIRT, 'tpm-emulator.xml');
    const r2 = await cli(['import', 'libvirt', headless, refused, '--out', out, '--json']);
    assert.equal(r2.code, 2);
    assert.deepEqual(readdirSync(dir), [], 'nothing written, no temporary file left');
    const rep2 = JSON.parse(r2.stdout) as ImportReport;
    assert.deepEqual(Object.keys(rep2), [
      'format',
      'version',
      'source',
      'out',
      'written',
      'outcome',
      'guests',
      'problems',
    ]);
    assert.deepEqual(Object.keys(rep2.guests[0]!), [
      'file',
      'sourceName',
      'name',
      'outcome',
      'carried',
      'defaulted',
      'needsReason',
      'refused',
      'copy',
    ]);
    assert.equal(rep2.written, false);
    assert.equal(rep2.outcome, 'refused');

    const r1 = await cli(['import', 'libvirt', headless, '--out', out]);
    assert.equal(r1.code, 1, r1.stdout + r1.stderr);
    assert.match(r1.stdout, /Wrote .*answers\.json/);
    assert.deepEqual(readdirSync(dir), ['answers.json']);
    const gen = await cli(['generate', '--answers', out, '--out', join(dir, 'bundle')]);
    assert.equal(gen.code, 0, gen.stderr);
    assert.match((await cli(['import', 'libvirt', headless, '--out', out])).stderr, /exists; pass --force/);

    const clean = join(dir, 'clean.xml');
    writeFileSync(
      clean,
      `<domain type='kvm'><name>clean</name><memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type machine='q35'>hvm</type></os><devices><disk type='file' device='disk'><driver type='raw'/><source file='/srv/clean.img'/><target dev='vda'/></disk></devices></domain>`,
    );
    const r0 = await cli(['import', 'libvirt', clean, '--out', out, '--force']);
    assert.equal(r0.code, 0, r0.stdout);
    assert.equal((JSON.parse(readFileSync(out, 'utf8')) as { guests: { name: string }[] }).guests[0]!.name, 'clean');

    const conflict = await cli(['import', 'libvirt', join(LIBVIRT, 'cputune.xml'), join(LIBVIRT, 'graphics-vnc.xml')]);
    assert.equal(conflict.code, 2);
    assert.match(
      conflict.stdout,
      /graphics-vnc\.xml: guests\.1\.disks\.0\.path: is already a writable disk of guest "qemuguest1"/,
    );
    assert.match(conflict.stdout, /renamed to "qemuguest1-2"/);
  });

  test('--qemu-conf: libvirt keeps display TLS in qemu.conf; the result agrees with libvirt’s own command line', async (t) => {
    const dir = guestFilesDir(t, 'qh-qemuconf-');
    const conf = join(dir, 'qemu.conf');
    writeFileSync(
      conf,
      [
        '# Master configuration file for the QEMU driver.',
        'vnc_listen = "127.0.0.1"',
        'vnc_tls = 1',
        'vnc_tls_x509_cert_dir = "/etc/pki/libvirt-vnc"   # certificates',
        'spice_tls = 1',
        'spice_tls_x509_cert_dir = "/etc/pki/libvirt-spice"',
        'cgroup_device_acl = [',
        '    "/dev/null", "/dev/full", "/dev/zero",',
        ']',
        'migrate_tls_force = 0',
        '',
      ].join('\n'),
    );
    // These domains name no disk; each is given one, so that its guest has something to boot.
    const run = async (xml: string) => {
      const copy = join(dir, `${xml}.xml`);
      writeFileSync(copy, withDisk(readFileSync(join(LIBVIRT, `${xml}.xml`), 'utf8')));
      const r = await cli([
        'import',
        'libvirt',
        '--qemu-conf',
        conf,
        '--json',
        '--out',
        join(dir, `${xml}.json`),
        copy,
      ]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      return {
        report: JSON.parse(r.stdout) as ImportReport,
        guest: (JSON.parse(readFileSync(join(dir, `${xml}.json`), 'utf8')) as { guests: Record<string, any>[] })
          .guests[0]!,
      };
    };
    const vnc = await run('graphics-vnc-tls');
    assert.deepEqual(vnc.guest.display, {
      mode: 'vnc-tls',
      listen: '127.0.0.1',
      port: 5903,
      tlsDir: '/etc/pki/libvirt-vnc',
    });
    const vncArgs = readFileSync(join(LIBVIRT, 'graphics-vnc-tls.args'), 'utf8');
    assert.match(
      vncArgs,
      /-vnc 127\.0\.0\.1:3,tls-creds=vnc-tls-creds0/,
      'libvirt: the same address and display number, with TLS',
    );
    assert.match(vncArgs, /"dir":"\/etc\/pki\/libvirt-vnc"/);
    assert.ok(vnc.report.guests[0]!.defaulted.some((i) => i.source === `${conf}: migrate_tls_force`));
    // SPICE over TLS authenticates no client: without a password file it comes over on a unix socket.
    const spice = await run('graphics-spice-compression');
    assert.deepEqual(spice.guest.display, { mode: 'spice-unix' });
    assert.match(
      readFileSync(join(LIBVIRT, 'graphics-spice-compression.args'), 'utf8'),
      /-spice port=5903,tls-port=5904,addr=127\.0\.0\.1,x509-dir=\/etc\/pki\/libvirt-spice/,
    );
    assert.ok(
      spice.report.guests[0]!.defaulted.some(
        (i) => i.source === 'devices/graphics[1]' && /requires a password file/.test(i.message),
      ),
    );
    writeFileSync(conf, 'vnc_tls = yes\n');
    const bad = await cli(['import', 'libvirt', '--qemu-conf', conf, join(LIBVIRT, 'graphics-vnc-tls.xml')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /qemu\.conf:1: vnc_tls: expected a quoted string, a number or a list/);
    noTrace(bad.stderr);
  });

  test('usage errors', async () => {
    const cases: [string[], RegExp][] = [
      [['import'], /import needs the kind of source first/],
      [['import', 'vmware', 'x.vmx'], /not "vmware"/],
      [['import', 'libvirt'], /needs at least one file \(or --running\)/],
      [['import', 'proxmox', 'a.conf', '--qemu-conf', 'q'], /--qemu-conf applies to 'import libvirt' only/],
      [['import', 'libvirt', '--running', 'a.xml'], /give no files with it/],
      [['import', 'libvirt', '/nonexistent.xml'], /cannot read: ENOENT/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      assert.ok(r.code === 2, `${args.join(' ')}: exit ${r.code}`);
      assert.match(r.stdout + r.stderr, re);
      noTrace(r.stdout + r.stderr);
    }
  });

  test('--running reads virsh dumpxml through the tool runner, and says clearly when virsh is absent', async (t) => {
    const dir = guestFilesDir(t, 'qh-virsh-');
    const absent = await cli(['import', 'libvirt', '--running'], { env: { PATH: dir } });
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, /needs virsh, which is not installed \(Debian package libvirt-clients\)/);
    noTrace(absent.stderr);
    requireTool('virsh', 'libvirt-clients');
    // The real virsh on libvirt's built-in test driver (no daemon): a node file holding two running domains,
    // libvirt's q35 test domain and one with a network disk.
    const q35 = readFileSync(join(LIBVIRT, 'x86_64-q35-headless.xml'), 'utf8').replace(
      "<domain type='qemu'>",
      "<domain type='test'>",
    );
    const rbd = readFileSync(join(LIBVIRT, 'disk-network-rbd.xml'), 'utf8').replace(
      "<domain type='qemu'>",
      "<domain type='test'>",
    );
    writeFileSync(join(dir, 'node.xml'), `<node>\n${q35}${rbd}</node>\n`);
    const env = { LIBVIRT_DEFAULT_URI: `test://${join(dir, 'node.xml')}` };
    const r = await cli(['import', 'libvirt', '--running', '--json'], { env });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const rep = JSON.parse(r.stdout) as ImportReport;
    assert.deepEqual(
      rep.guests.map((g) => [g.file, g.outcome]),
      [
        ['virsh dumpxml guest', 'defaulted'],
        ['virsh dumpxml QEMUGuest1', 'refused'],
      ],
    );
    assert.ok(
      rep.guests[0]!.carried.some((i) => i.source === 'devices/disk[1]' && /guest\.qcow2, qcow2/.test(i.message)),
    );
    assert.ok(rep.guests[1]!.refused.some((i) => i.source === 'devices/disk[1]/source@protocol'));
    const one = join(dir, 'one.xml');
    writeFileSync(one, `<node>\n${q35}</node>\n`);
    const out = join(dir, 'answers.json');
    const w = await cli(['import', 'libvirt', '--running', '--out', out], {
      env: { LIBVIRT_DEFAULT_URI: `test://${one}` },
    });
    assert.equal(w.code, 1, w.stdout + w.stderr);
    assert.equal(
      (JSON.parse(readFileSync(out, 'utf8')) as { guests: { memoryMiB: number }[] }).guests[0]!.memoryMiB,
      4096,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The QEMU an imported guest's unit starts, read back through QMP.

interface PeerDisk {
  path: string;
  format: string;
  readOnly: boolean;
}

/** What libvirt's .args or Proxmox's .cmd gives QEMU: memory, vCPUs, and each disk's format and read-only flag. */
function peerCommandLine(text: string): {
  memoryMiB: number;
  vcpus: number;
  disks: PeerDisk[];
  unixDisplay?: 'vnc-unix' | 'spice-unix';
  /** The properties of its -machine option. */
  machine: string[];
} {
  const args = text.replace(/\\\n/g, ' ');
  const mem = /(?:^|\s)-m '?(?:size=)?(\d+)([kMG]?)/.exec(args)!;
  const memoryMiB = mem[2] === 'k' ? Number(mem[1]) / 1024 : mem[2] === 'G' ? Number(mem[1]) * 1024 : Number(mem[1]);
  const vcpus = Number(/(?:^|\s)-smp '?(\d+)/.exec(args)![1]);
  const disks: PeerDisk[] = [];
  const nodes = new Map<string, Record<string, unknown>>();
  const formatNodes: Record<string, unknown>[] = [];
  const visit = (n: Record<string, unknown>) => {
    if (typeof n['node-name'] === 'string') nodes.set(n['node-name'], n);
    if (n.driver === 'qcow2' || n.driver === 'raw') formatNodes.push(n);
    if (n.file && typeof n.file === 'object') visit(n.file as Record<string, unknown>);
  };
  for (const m of args.matchAll(/-blockdev '(\{.*?\})'(?=\s|$)/g)) visit(JSON.parse(m[1]!) as Record<string, unknown>);
  const filenameOf = (n: Record<string, unknown> | undefined): string | undefined => {
    if (!n) return undefined;
    if (typeof n.filename === 'string') return n.filename;
    return filenameOf(typeof n.file === 'string' ? nodes.get(n.file) : (n.file as Record<string, unknown> | undefined));
  };
  const layered = new Set<unknown>();
  for (const n of formatNodes) {
    const path = filenameOf(n);
    layered.add(typeof n.file === 'string' ? nodes.get(n.file) : n.file);
    if (path) disks.push({ path, format: n.driver as string, readOnly: n['read-only'] === true });
  }
  // libvirt leaves the raw format layer out when nothing needs it: the device then uses the storage node.
  for (const n of nodes.values())
    if (
      ['file', 'host_device', 'host_cdrom'].includes(n.driver as string) &&
      !layered.has(n) &&
      typeof n.filename === 'string'
    )
      disks.push({ path: n.filename, format: 'raw', readOnly: n['read-only'] === true });
  for (const m of args.matchAll(/-drive '?([^' ]+)'?/g)) {
    const kv = new Map(
      m[1]!.split(',').map((p) => [p.split('=')[0]!, p.slice(p.indexOf('=') + 1)] as [string, string]),
    );
    if (!kv.has('file') || kv.get('if') === 'pflash') continue;
    disks.push({
      path: kv.get('file')!,
      format: kv.get('format') ?? 'raw',
      readOnly: kv.get('readonly') === 'on' || kv.get('media') === 'cdrom',
    });
  }
  const unixDisplay = /(?:^|\s)-spice '?[^ ]*unix=on/.test(args)
    ? 'spice-unix'
    : /(?:^|\s)-vnc '?unix:/.test(args)
      ? 'vnc-unix'
      : undefined;
  const machine = (/(?:^|\s)-machine '?([^ ']+)/.exec(args)?.[1] ?? '').split(',');
  return { memoryMiB, vcpus, disks, unixDisplay, machine };
}

/**
 * QMP on the guest's socket. The socket appears once QEMU has started, an instant before it listens: connecting is
 * retried until it is accepted (any other error ends the wait).
 */
async function qmp(socket: string, commands: QmpCommand[]): Promise<unknown[]> {
  let last: unknown;
  const replies = await waitUntil(
    `QMP on ${socket}`,
    async () => {
      try {
        return await qmpOnce(socket, commands);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
        last = e;
        return undefined;
      }
    },
    { everyMs: 100, detail: () => String(last) },
  );
  return replies;
}

type QmpCommand = string | { execute: string; arguments: Record<string, unknown> };

function qmpOnce(socket: string, commands: QmpCommand[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    const replies: unknown[] = [];
    const queue: QmpCommand[] = ['qmp_capabilities', ...commands];
    s.setTimeout(120_000, () => reject(new Error('QMP timed out')));
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if ('QMP' in msg || 'return' in msg || 'error' in msg) {
          if ('error' in msg) return reject(new Error(JSON.stringify(msg.error)));
          if ('return' in msg) replies.push(msg.return);
          const next = queue.shift();
          if (next) s.write(JSON.stringify(typeof next === 'string' ? { execute: next } : next) + '\n');
          else {
            s.end();
            resolve(replies.slice(1));
          }
        }
      }
    });
  });
}

interface Sample {
  label: string;
  source: () => { document: unknown };
  peer: string;
  /** Memory and vCPUs as the source file states them, read here without the importer. */
  stated: { memoryMiB: number; vcpus: number };
}

const SAMPLES: Sample[] = [
  {
    label: 'libvirt x86_64-q35-headless',
    source: () => fromLibvirt([input(join(LIBVIRT, 'x86_64-q35-headless.xml'))], { host }),
    peer: join(LIBVIRT, 'x86_64-q35-headless.args'),
    stated: { memoryMiB: 4194304 / 1024, vcpus: 4 },
  },
  {
    label: 'libvirt disk-boot-disk',
    source: () => fromLibvirt([input(join(LIBVIRT, 'disk-boot-disk.xml'))], { host }),
    peer: join(LIBVIRT, 'disk-boot-disk.args'),
    stated: { memoryMiB: 219100 / 1024, vcpus: 1 },
  },
  {
    label: 'libvirt cputune',
    source: () => fromLibvirt([input(join(LIBVIRT, 'cputune.xml'))], { host }),
    peer: join(LIBVIRT, 'cputune.args'),
    stated: { memoryMiB: 219136 / 1024, vcpus: 4 },
  },
  {
    label: 'libvirt graphics-vnc',
    source: () => fromLibvirt([input(join(LIBVIRT, 'graphics-vnc.xml'))], { host }),
    peer: join(LIBVIRT, 'graphics-vnc.args'),
    stated: { memoryMiB: 219100 / 1024, vcpus: 1 },
  },
  {
    label: 'proxmox ide',
    source: () =>
      fromProxmox([input(join(PROXMOX, 'ide.conf'))], {
        host,
        storages: parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg'),
      }),
    peer: join(PROXMOX, 'ide.conf.cmd'),
    stated: { memoryMiB: 512, vcpus: 2 },
  },
  {
    label: 'proxmox pinned-version',
    source: () =>
      fromProxmox([input(join(PROXMOX, 'pinned-version.conf'))], {
        host,
        storages: parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg'),
      }),
    peer: join(PROXMOX, 'pinned-version.conf.cmd'),
    stated: { memoryMiB: 1024, vcpus: 3 },
  },
];

describe('imported guests boot under TCG and QEMU reports what the source meant', () => {
  for (const [si, s] of SAMPLES.entries()) {
    test(s.label, async (t) => {
      requireTool('qemu-system-x86_64', 'qemu-system-x86');
      requireTool('qemu-img', 'qemu-utils');
      requireTool('unshare', 'util-linux');
      requireTool('ip', 'iproute2');
      const { document } = s.source();
      assert.ok(document, `${s.label} imports`);
      const doc = structuredClone(document) as {
        useCase: string;
        acceptedRisks: unknown[];
        guests: Record<string, any>[];
      };
      // Under TCG everywhere: the emulation use case, its risk accepted; vhost-net needs /dev/vhost-net.
      doc.useCase = 'emulation';
      doc.acceptedRisks = [
        ...doc.acceptedRisks,
        { risk: 'emulation', reason: 'the import test boots under TCG on every machine' },
      ];
      const g0 = doc.guests[0]!;
      if (g0.cpu?.model === 'host') delete g0.cpu.model;
      if (g0.network?.mode === 'tap') g0.network.vhost = false;
      const dir = guestFilesDir(t, 'qh-import-boot-');
      chmodSync(dir, 0o755);
      const uid = 61200 + si;
      // Each disk becomes an image the test makes, at the same format; the answers keep everything else.
      const original = new Map<string, string>();
      (g0.disks ?? []).forEach((d: { path: string; format: string; blockDevice?: boolean }, i: number) => {
        const img = join(dir, `disk${i}.${d.format}`);
        if (d.format === 'qcow2') {
          const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M'], { encoding: 'utf8' });
          assert.equal(r.status, 0, r.stderr);
        } else writeBootDisk(img);
        chownSync(img, uid, uid);
        original.set(img, d.path);
        d.path = img;
        d.blockDevice = false;
      });
      const a: Answers = validate(doc);
      const g = a.guests[0]!;
      const peer = peerCommandLine(readFileSync(s.peer, 'utf8'));
      const run = join(dir, 'run');
      const log = join(dir, 'log');
      for (const d of [run, log]) {
        mkdirSync(d);
        chownSync(d, uid, uid);
      }
      makeStopPipe(run, uid);
      const argv = execStart(guestService(a, g)).map((w) =>
        w.replaceAll(`/run/qemu-harden/${g.name}`, run).replaceAll(`/var/log/qemu-harden/${g.name}`, log),
      );
      argv[argv.indexOf('-cpu') + 1] = 'max';
      const tap = tapDevice(g);
      const script = [
        'set -e',
        `mknod -m 0600 ${dir}/tun c 10 200 && chown ${uid}:${uid} ${dir}/tun`,
        `mount --bind ${dir}/tun /dev/net/tun`,
        ...(tap ? [`ip tuntap add dev ${tap} mode tap user ${uid} group ${uid}`, `ip link set dev ${tap} up`] : []),
        `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups --no-new-privs -- "$@"`,
      ].join('\n');
      const child = spawn(
        'unshare',
        ['--mount', '--net', '--propagation', 'private', 'sh', '-c', script, 'sh', ...argv],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      t.after(() => stopChild(child));
      let replies: unknown[];
      try {
        replies = await qmp(join(run, 'qmp.sock'), [
          'query-memory-size-summary',
          'query-cpus-fast',
          'query-block',
          'query-vnc',
          'query-spice',
          { execute: 'qom-get', arguments: { path: '/machine', property: 'acpi' } },
          { execute: 'qom-get', arguments: { path: '/machine', property: 'hpet' } },
          'quit',
        ]);
      } catch (e) {
        throw new Error(`${(e as Error).message}; QEMU stderr: ${stderr}`, { cause: e });
      }
      const [mem, cpus, blocks, vnc, spice, acpi, hpet] = replies as [
        { 'base-memory': number },
        unknown[],
        { device: string; qdev?: string; inserted?: { file: string; drv: string; ro: boolean } }[],
        { enabled: boolean; family?: string; host?: string },
        { enabled: boolean; host?: string; port?: number; 'tls-port'?: number },
        string,
        boolean,
      ];
      // ACPI and the HPET as the peer starts the guest: libvirt's -no-acpi and -no-hpet of old, -machine acpi=off
      // and hpet=off now. Proxmox turns the HPET off by the guest's OS type and its own QEMU version, which the
      // configuration does not state: only ACPI is compared there.
      assert.equal(acpi === 'off', peer.machine.includes('acpi=off'), `ACPI ${acpi}; the peer: ${peer.machine}`);
      if (s.label.startsWith('libvirt'))
        assert.equal(hpet === false, peer.machine.includes('hpet=off'), `HPET ${hpet}; the peer: ${peer.machine}`);
      // The display: on the guest's own unix socket, never on TCP.
      if (peer.unixDisplay)
        assert.equal(
          g.display.mode,
          peer.unixDisplay,
          'a display the peer puts on a unix socket stays on one, same protocol',
        );
      assert.equal(vnc.enabled, g.display.mode === 'vnc-unix', `VNC: ${JSON.stringify(vnc)}`);
      if (vnc.enabled) assert.equal(vnc.family, 'unix');
      assert.equal(spice.enabled, g.display.mode === 'spice-unix', `SPICE: ${JSON.stringify(spice)}`);
      if (spice.enabled) {
        assert.equal(spice.port, undefined, 'no plain TCP port');
        assert.equal(spice['tls-port'], undefined, 'no TLS TCP port');
        assert.equal(
          statSync(join(run, 'spice.sock')).uid,
          uid,
          'the SPICE socket is the guest user’s, in its runtime directory',
        );
      }

      const memMiB = mem['base-memory'] / (1024 * 1024);
      assert.equal(memMiB, g.memoryMiB, 'QEMU runs the answers’ memory');
      assert.equal(memMiB, Math.ceil(s.stated.memoryMiB), 'the source’s memory (rounded up to whole MiB)');
      assert.equal(memMiB, Math.ceil(peer.memoryMiB), 'the memory the peer gives QEMU');
      assert.equal(cpus.length, s.stated.vcpus, 'the source’s vCPUs');
      assert.equal(cpus.length, peer.vcpus, 'the vCPUs the peer gives QEMU');

      const inserted = blocks.filter((b) => b.inserted).map((b) => b.inserted!);
      assert.equal(inserted.length, g.disks.length, `every imported disk is attached: ${JSON.stringify(blocks)}`);
      for (const d of g.disks) {
        const source = original.get(d.path)!;
        const q = inserted.find((b) => b.file === d.path);
        assert.ok(q, `${source} attached`);
        assert.equal(q.drv, d.format, `${source}: format`);
        assert.equal(q.ro, d.readOnly, `${source}: read-only`);
        const p = peer.disks.find((x) => x.path === source);
        assert.ok(p, `${source} is a disk on the peer's command line too: ${JSON.stringify(peer.disks)}`);
        assert.equal(q.drv, p.format, `${source}: the peer's format`);
        assert.equal(q.ro, p.readOnly, `${source}: the peer's read-only flag`);
      }
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', () => resolve())));
      t.diagnostic(
        `${s.label}: ${memMiB} MiB, ${cpus.length} vCPUs, ${inserted.map((b) => `${b.drv}${b.ro ? ' ro' : ''}`).join(', ')}`,
      );
    });
  }
});

describe('UEFI Secure Boot carried from the source is enforced by the imported guest’s firmware', () => {
  test('an EFI program signed by no key the firmware trusts is refused with Secure Boot and started without it', async (t) => {
    requireTool('qemu-system-x86_64', 'qemu-system-x86');
    requireTool('qemu-img', 'qemu-utils');
    requireTool('setpriv', 'util-linux');
    const dir = guestFilesDir(t, 'qh-import-sb-');
    chmodSync(dir, 0o755);
    // The EFI system partition: Debian's kernel (an EFI program signed by Debian's key, which the Microsoft key
    // set does not trust) as the default boot program.
    const img = writeEsp(ensureKernel().vmlinuz, join(dir, 'esp.img'));
    const domain = (name: string, secure: boolean) =>
      `<domain type='kvm'><name>${name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
         <os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware><feature enabled='${secure ? 'yes' : 'no'}' name='secure-boot'/></firmware></os>
         <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${img}'/><target dev='vda' bus='virtio'/><readonly/></disk></devices></domain>`;
    const results: Record<string, { log: string; flashSecure: unknown }> = {};
    for (const [i, [name, secure]] of (
      [
        ['sb', true],
        ['nosb', false],
      ] as const
    ).entries()) {
      const { document, report } = fromLibvirt([{ file: `${name}.xml`, read: () => domain(name, secure) }], { host });
      assert.equal(report.guests[0]!.outcome, 'imported', JSON.stringify(report.guests[0]));
      const doc = document as { useCase: string; acceptedRisks: unknown[]; guests: Record<string, any>[] };
      doc.useCase = 'emulation';
      doc.acceptedRisks = [{ risk: 'emulation', reason: 'the import test boots under TCG on every machine' }];
      const a = validate(doc);
      const g = a.guests[0]!;
      if (g.firmware.type !== 'uefi') throw new Error('expected UEFI');
      assert.equal(g.firmware.secureBoot, secure);
      const uid = 61300 + i;
      const root = join(dir, name);
      const [run, log, state] = ['run', 'log', 'state'].map((d) => join(root, d)) as [string, string, string];
      for (const d of [root, run, log, state]) {
        mkdirSync(d, { recursive: true });
        chownSync(d, uid, uid);
      }
      copyFileSync(g.firmware.varsTemplate, join(state, 'OVMF_VARS.fd'));
      chownSync(join(state, 'OVMF_VARS.fd'), uid, uid);
      makeStopPipe(run, uid);
      const argv = execStart(guestService(a, g)).map((w) =>
        w
          .replaceAll(`/run/qemu-harden/${name}`, run)
          .replaceAll(`/var/log/qemu-harden/${name}`, log)
          .replaceAll(`/var/lib/qemu-harden/${name}`, state),
      );
      argv[argv.indexOf('-cpu') + 1] = 'max';
      const child = spawn(
        'setpriv',
        [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs', '--', ...argv],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      t.after(() => stopChild(child));
      const [flash] = (await qmp(join(run, 'qmp.sock'), [
        { execute: 'qom-get', arguments: { path: '/machine/system.flash0', property: 'secure' } },
      ])) as [unknown];
      const serial = join(log, 'serial.log');
      const read = () => (existsSync(serial) ? readFileSync(serial, 'latin1').replace(/\r/g, '') : '');
      await waitUntil(
        `${name}: OVMF to refuse or start the EFI program (or QEMU to exit)`,
        () => /Access Denied|starting Boot0001/.test(read()) || child.exitCode !== null,
        { timeoutMs: 600_000, detail: () => `QEMU stderr: ${stderr}` },
      );
      const text = read();
      await stopChild(child);
      assert.ok(/BdsDxe/.test(text), `${name}: OVMF reached its boot manager; QEMU stderr: ${stderr}`);
      results[name] = { log: text, flashSecure: flash };
    }
    assert.equal(results.sb!.flashSecure, true, 'the firmware flash is writable only from SMM');
    assert.match(
      results.sb!.log,
      /failed to load Boot0001 .*: Access Denied/,
      'Secure Boot refuses the untrusted program',
    );
    assert.equal(results.nosb!.flashSecure, false);
    assert.match(results.nosb!.log, /starting Boot0001/, 'without Secure Boot the same program starts');
  });
});

describe('Windows guests: the TPM and Secure Boot come over, and the TPM’s state is named as a copy to make', () => {
  const storages = () => parseStorageCfg(readFileSync(join(PROXMOX, 'storage.cfg'), 'utf8'), 'storage.cfg');
  const proxmox = (files: [string, string][]) =>
    fromProxmox(
      files.map(([file, text]) => ({ file, read: () => text })),
      { storages: storages(), host },
    );
  const withDisk = (conf: string) => `${conf}scsi0: local:100/vm-100-disk-2.raw,size=64G\n`;

  test('Proxmox’s own Secure Boot and TPM test guest (corpus), given a disk: tpmstate0 becomes the guest’s swtpm', () => {
    const conf = withDisk(readFileSync(join(PROXMOX, 'efi-secboot-and-tpm-q35.conf'), 'utf8'));
    const { document, report } = proxmox([['/etc/pve/qemu-server/100.conf', conf]]);
    const g = report.guests[0]!;
    assert.equal(g.outcome, 'defaulted', JSON.stringify(g));
    const a = validate(document);
    const guest = a.guests[0]!;
    assert.equal(guest.tpm, 'tpm2');
    assert.ok(guest.firmware.type === 'uefi' && guest.firmware.secureBoot);
    assert.deepEqual(g.copy, [
      {
        source: 'tpmstate0',
        message: g.copy[0]!.message,
        from: '/var/lib/vz/images/108/vm-100-disk-1.raw',
        to: `/var/lib/qemu-harden/${guest.name}/tpm2`,
      },
    ]);
    assert.match(g.copy[0]!.message, /single-file format/);
    assert.match(g.copy[0]!.message, /docs\/windows\.md/);
    assert.ok(g.defaulted.some((d) => d.source === 'tpmstate0' && /tpm-tis interface becomes tpm-crb/.test(d.message)));
    const text = renderReport({ ...report, out: null });
    assert.match(text, /to copy by hand before the guest first starts:\n {4}tpmstate0: /);
    assert.ok(
      text.includes(
        `      from /var/lib/vz/images/108/vm-100-disk-1.raw\n      to   /var/lib/qemu-harden/${guest.name}/tpm2\n`,
      ),
    );
    const files = plan(a).map((f) => f.path);
    for (const f of [
      `root/etc/systemd/system/qemu-${guest.name}-tpm.service`,
      `root/etc/systemd/system/qemu-${guest.name}-tpm.socket`,
      `root/etc/apparmor.d/qemu-harden-${guest.name}-tpm`,
    ])
      assert.ok(files.includes(f), `${f} in the bundle`);
  });

  test('Proxmox: a TPM 1.2, or one whose version is not written, is refused; a renamed guest’s copy goes to its new name', () => {
    for (const [line, why] of [
      ['tpmstate0: local:100/vm-100-disk-1.raw,size=4M,version=v1.2\n', /TPM 1\.2/],
      ['tpmstate0: local:100/vm-100-disk-1.raw,size=4M\n', /no version= given/],
    ] as const) {
      const { report } = proxmox([['/etc/pve/qemu-server/100.conf', withDisk(`bios: ovmf\nmachine: q35\n${line}`)]]);
      const g = report.guests[0]!;
      assert.equal(g.outcome, 'refused');
      assert.match(g.refused.find((r) => r.source === 'tpmstate0')!.message, why);
    }
    const conf = (vmid: number) =>
      withDisk(
        `name: win\nbios: ovmf\nmachine: q35\ntpmstate0: local:${vmid}/vm-${vmid}-disk-1.qcow2,size=4M,version=v2.0\n`,
      ).replace('vm-100-disk-2', `vm-${vmid}-disk-2`);
    const { report } = proxmox([
      ['/etc/pve/qemu-server/100.conf', conf(100)],
      ['/etc/pve/qemu-server/101.conf', conf(101)],
    ]);
    assert.deepEqual(
      report.guests.map((g) => [g.name, g.copy.map((c) => [c.from, c.to])]),
      [
        ['win', [['/var/lib/vz/images/100/vm-100-disk-1.qcow2', '/var/lib/qemu-harden/win/tpm2']]],
        ['win-2', [['/var/lib/vz/images/101/vm-101-disk-1.qcow2', '/var/lib/qemu-harden/win-2/tpm2']]],
      ],
    );
    assert.match(report.guests[0]!.copy[0]!.message, /inside a qcow2 volume/);
  });

  test('libvirt: <tpm> with an emulated TPM 2.0 and Secure Boot come over; the state’s copy names libvirt’s directory', () => {
    const uuid = '3b4a2c1e-5f6d-4e7a-8b9c-0d1e2f3a4b5c';
    const domain = (
      tpm: string,
      os = `<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><firmware><feature enabled='yes' name='secure-boot'/></firmware></os>`,
    ) =>
      `<domain type='kvm'><name>Win11</name><uuid>${uuid}</uuid><memory unit='GiB'>4</memory><vcpu>2</vcpu>${os}
         <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/srv/win11.qcow2'/><target dev='vda' bus='virtio'/></disk>${tpm}</devices></domain>`;
    const one = (xml: string) => fromLibvirt([{ file: 'win11.xml', read: () => xml }], { host });

    const crb = one(domain(`<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>`));
    const g = crb.report.guests[0]!;
    assert.equal(g.outcome, 'defaulted', JSON.stringify(g));
    assert.equal(g.defaulted.length, 0, 'nothing changed: the copy alone asks for the operator');
    const guest = validate(crb.document).guests[0]!;
    assert.equal(guest.tpm, 'tpm2');
    assert.ok(guest.firmware.type === 'uefi' && guest.firmware.secureBoot);
    assert.deepEqual(
      g.copy.map((c) => [c.source, c.from, c.to]),
      [['devices/tpm[1]', `/var/lib/libvirt/swtpm/${uuid}/tpm2/tpm2-00.permall`, '/var/lib/qemu-harden/win11/tpm2']],
    );
    assert.match(g.copy[0]!.message, /owned by the guest’s user, mode 0600/);
    assert.equal(exitStatus(crb.report.outcome), 1);

    const tis = one(
      domain(
        `<tpm model='tpm-tis'><backend type='emulator' version='2.0'><source type='file' path='/srv/tpm/win11.state'/><active_pcr_banks><sha256/></active_pcr_banks></backend></tpm>`,
        `<os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader></os>`,
      ),
    ).report.guests[0]!;
    assert.equal(tis.outcome, 'defaulted');
    assert.ok(tis.defaulted.some((d) => d.source === 'devices/tpm[1]@model' && /becomes tpm-crb/.test(d.message)));
    assert.ok(tis.defaulted.some((d) => d.source === 'devices/tpm[1]/backend/active_pcr_banks'));
    assert.ok(tis.carried.some((c) => c.source === 'os/loader@secure'));
    assert.deepEqual(
      tis.copy.map((c) => [c.from, c.to]),
      [['/srv/tpm/win11.state', '/var/lib/qemu-harden/win11/tpm2']],
    );
    assert.match(tis.copy[0]!.message, /single-file format/);

    const second = one(
      domain(
        `<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>`,
      ),
    ).report.guests[0]!;
    assert.equal(second.outcome, 'refused');
    assert.ok(second.refused.some((r) => r.source === 'devices/tpm[2]'));
  });

  test('the JSON report carries the copy, and the CLI exits 1 for it', async (t) => {
    const dir = tempDir(t, 'qh-import-tpm-');
    const file = join(dir, '100.conf');
    writeFileSync(
      file,
      withDisk('name: win\nbios: ovmf\nmachine: q35\ntpmstate0: /dev/pve/vm-100-disk-1,version=v2.0\n'),
    );
    const r = await cli(['import', 'proxmox', file, '--storage-cfg', join(PROXMOX, 'storage.cfg'), '--json']);
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as ImportReport;
    assert.deepEqual(
      report.guests[0]!.copy.map((c) => [c.source, c.from, c.to]),
      [['tpmstate0', '/dev/pve/vm-100-disk-1', '/var/lib/qemu-harden/win/tpm2']],
    );
  });
});
