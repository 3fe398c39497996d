// answers → the bundle: a pure function from the validated model to a sorted list of files.
import { sysusers, tmpfiles, udevRules } from './gen/host.js';
import { bundleReadme } from './gen/readme.js';
import { logrotateConfig } from './gen/logrotate.js';
import {
  guestService,
  helperService,
  helperSocket,
  logrotateService,
  logrotateTimer,
  slice,
  tapService,
} from './gen/systemd.js';
import * as G from './guest.js';
import { helpersOf } from './helpers/index.js';
import { ANSWERS, MANIFEST, README, sha256, type BundleFile } from './bundle-layout.js';
import { CONFINEMENT, generatorOf, loadGenerators } from './confine/index.js';
import * as N from './names.js';
import type { Answers } from './model.js';

export type { BundleFile };

// The confinement backends' generators: loaded with this module, which only writers of bundles import.
await loadGenerators();

export function answersJson(a: Answers): string {
  return JSON.stringify(a, null, 2) + '\n';
}

export interface PlanOptions {
  /** How the bundle's README writes the qemu-harden commands to run it with: the form that works from any
   * directory on the machine writing the bundle (src/invocation.ts). Without it, the installed `qemu-harden`. */
  runAs?: string;
}

export function plan(a: Answers, o: PlanOptions = {}): BundleFile[] {
  const files: BundleFile[] = [];
  const add = (path: string, content: string, why: string, mode = 0o644) => files.push({ path, mode, content, why });

  add('root/etc/systemd/system/qemu.slice', slice(), 'the cgroup slice every guest runs in');
  for (const g of a.guests) {
    add(
      `root/etc/systemd/system/${G.unitName(g)}`,
      guestService(a, g),
      `runs guest ${g.name}'s QEMU as ${G.userName(g)}, sandboxed and limited`,
    );
    if (g.migration?.enabled)
      add(
        `root/etc/systemd/system/${G.incomingUnitName(g)}`,
        guestService(a, g, { incoming: true }),
        `starts guest ${g.name} as a live-migration destination instead of ${G.unitName(g)}`,
      );
    for (const h of helpersOf(a, g)) {
      add(
        `root/etc/systemd/system/${G.helperUnitName(g, h.kind)}`,
        helperService(a, g, h),
        `runs guest ${g.name}'s ${h.title} as ${G.userName(g)}, sandboxed like its QEMU, before QEMU starts`,
      );
      if (h.readiness === 'socket')
        add(
          `root/etc/systemd/system/${G.helperSocketName(g, h.kind)}`,
          helperSocket(g, h),
          `the socket of guest ${g.name}'s ${h.title}, which QEMU connects to`,
        );
    }
    const tap = tapService(a, g);
    if (tap)
      add(
        `root/etc/systemd/system/${G.tapUnitName(g)}`,
        tap,
        `creates tap ${G.tapDevice(g)} owned by ${G.userName(g)}`,
      );
  }
  for (const b of CONFINEMENT) for (const f of b.files(a)) add(f.path, f.text(generatorOf(b)), f.why);
  const rotate = logrotateConfig(a);
  if (rotate) {
    add(
      'root/etc/qemu-harden/logrotate.conf',
      rotate,
      'bounds each guest’s serial log: rotated past 1 MiB, 4 old copies',
    );
    add(
      `root/etc/systemd/system/${N.LOGROTATE_SERVICE}`,
      logrotateService(a),
      'runs logrotate on the guests’ serial logs',
    );
    add(
      `root/etc/systemd/system/${N.LOGROTATE_TIMER}`,
      logrotateTimer(),
      'starts the serial-log rotation every minute',
    );
  }
  add('root/etc/sysusers.d/qemu-harden.conf', sysusers(a), 'one system user per guest, and the device groups');
  add('root/etc/tmpfiles.d/qemu-harden.conf', tmpfiles(a), 'directories and ownership of each guest’s own files');
  add(
    'root/etc/udev/rules.d/65-qemu-harden.rules',
    udevRules(a),
    'device nodes to groups, passthrough devices to one guest',
  );
  add(ANSWERS, answersJson(a), 'the answers this bundle was generated from');

  files.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  files.push({
    path: README,
    mode: 0o644,
    content: bundleReadme(a, files, o.runAs),
    why: 'what each file does and every accepted risk',
  });
  files.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  files.push({
    path: MANIFEST,
    mode: 0o644,
    content: manifest(files),
    why: 'sha256sum -c checks the bundle is intact',
  });
  return files;
}

export function manifest(files: BundleFile[]): string {
  return files
    .filter((f) => f.path !== MANIFEST)
    .map((f) => `${sha256(f.content)}  ${f.path}\n`)
    .join('');
}
