// Every systemd unit of the bundle read by systemd itself (`systemd-analyze verify`), with the bundle's unit
// directory first on the unit path so the units find each other. Not whether the man pages named in
// Documentation= are installed (--man=no): a host installed without man-db has none, and that says nothing about
// the bundle (Debian 13's minimal install is such a host, test/trixie.test.ts).
import { join } from 'node:path';
import { run } from '../tools.js';
import type { BundleUnderCheck, Check } from './check.js';
import { plural } from '../words.js';

export const UNIT_DIR = 'root/etc/systemd/system';

export const units: Check<BundleUnderCheck> = {
  name: 'systemd-analyze verify',
  tool: 'systemd-analyze',
  debianPackage: 'systemd',
  async run(b, tools) {
    const files = b.expected.filter((f) => f.path.startsWith(`${UNIT_DIR}/`)).map((f) => join(b.dir, f.path));
    const r = await run(tools['systemd-analyze']!, ['verify', '--man=no', ...files], {
      env: { SYSTEMD_UNIT_PATH: `${join(b.dir, UNIT_DIR)}:`, SYSTEMD_LOG_COLOR: '0' },
    });
    const lines = (r.stderr + r.stdout).split('\n').filter((l) => l.trim() !== '');
    const findings = lines.map((message) => ({ message }));
    if (r.exitCode !== 0 && lines.length === 0) findings.push({ message: `exited ${r.exitCode}` });
    return {
      status: r.exitCode === 0 && lines.length === 0 ? 'passed' : 'failed',
      detail: plural(files.length, 'unit'),
      findings,
    };
  },
};
