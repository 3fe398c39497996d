// QEMU's command-line grammar, for everything that reads a QEMU command line (the audit, `import` of libvirt's
// and Proxmox's pass-through options): which options take an argument, and how QemuOpts splits one
// ("key=value,...", where ",," is a literal comma), and an argument as it may be shown, its secrets redacted.

/** QEMU options that take no argument; every other option takes exactly one. */
const FLAGS = new Set([
  'h',
  'help',
  'version',
  'S',
  'nodefaults',
  'no-user-config',
  'nodefconfig',
  'daemonize',
  'no-shutdown',
  'no-reboot',
  'snapshot',
  'nographic',
  'enable-kvm',
  'no-kvm',
  'no-hpet',
  'no-acpi',
  'async-teardown',
  'full-screen',
  's',
  'usb',
  'win2k-hack',
  'no-fd-bootchk',
  'no-quit',
  'alt-grab',
  'ctrl-grab',
  'preconfig',
  'only-migratable',
  'enable-sync-profile',
  'xen-attach',
  'rtc-td-hack',
  'semihosting',
  'old-param',
  'no-frame',
  'sdl',
  'curses',
  'portrait',
  'enable-fips',
  'perfmap',
  'jitdump',
  'audio-help',
]);

/** Whether QEMU reads this option (without dashes) without an argument. */
export const isFlag = (name: string) => FLAGS.has(name);

export type Opts = Map<string, string>;

export interface Option {
  /** Without leading dashes: "vnc", "drive". */
  name: string;
  /** The argument exactly as passed, or undefined for a flag. */
  value: string | undefined;
}

/**
 * Split one QemuOpts string. The first element without "=" is stored under `implied` (e.g. the backend of
 * -chardev, the display of -vnc); a bare key later on means "on", and "noKEY" means KEY=off.
 */
export function splitOpts(value: string, implied?: string): Opts {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; ;) {
    const comma = value.indexOf(',', i);
    if (comma < 0) {
      parts.push(cur + value.slice(i));
      break;
    }
    cur += value.slice(i, comma);
    if (value[comma + 1] === ',') {
      cur += ',';
      i = comma + 2;
    } else {
      parts.push(cur);
      cur = '';
      i = comma + 1;
    }
  }
  const out: Opts = new Map();
  parts.forEach((p, i) => {
    const eq = p.indexOf('=');
    if (eq >= 0) out.set(p.slice(0, eq), p.slice(eq + 1));
    else if (i === 0 && implied) out.set(implied, p);
    else if (p.startsWith('no') && p.length > 2 && !out.has(p)) out.set(p.slice(2), 'off');
    else if (p !== '') out.set(p, 'on');
  });
  return out;
}

/**
 * A command line as QEMU reads it: after the program (argv[0]) each option with its argument, a flag without one,
 * and a word that is no option as an option named "" (QEMU takes it as the first disk).
 */
export function splitArgv(argv: string[]): Option[] {
  const out: Option[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-') {
      out.push({ name: '', value: a });
      continue;
    }
    const name = a.replace(/^--?/, '');
    if (FLAGS.has(name)) out.push({ name, value: undefined });
    else out.push({ name, value: argv[++i] });
  }
  return out;
}

/**
 * A command-line argument as it may be shown: the value of a secret object's `data` and of a non-boolean
 * `password` (SPICE's legacy plain-text password) replaced, in QemuOpts and in JSON form alike.
 */
export function redact(arg: string): string {
  return arg
    .replace(/("(?:data|password)"\s*:\s*)"(?:[^"\\]|\\.)*"/g, '$1"(redacted)"')
    .replace(/(^|,)(data|password)=((?:[^,]|,,)*)/g, (m, lead: string, key: string, value: string) =>
      /^(on|off|yes|no|true|false)$/.test(value) ? m : `${lead}${key}=(redacted)`,
    );
}
