// Reads that a process or a user can stall, done in a process of their own with a deadline. A command line is
// read from the target's memory, which the target can keep locked; a path it names can sit on a file system
// that never answers (a FUSE server that does not reply stalls stat forever, in a wait only a fatal signal
// ends). In this process such a call would hold a thread of libuv's pool, and Node waits for those threads
// before it exits: qemu-harden would never finish. So `audit` and `status` hand these reads to a small Node
// child (its program is `sidecar` below, run with `node -e`), take each answer that comes by its deadline, list
// the rest as not read, and end the child with SIGKILL, which also ends any call of its still waiting.
//
// Only a regular file is ever opened for reading: a path is resolved once with O_PATH (which opens no device
// and waits on no FIFO writer), fstat on that descriptor must say "regular file", and only then is that same
// inode opened, through /proc/self/fd. A FIFO, a terminal or a device such as /dev/watchdog swapped in at the
// path is never opened. Nothing here writes anything.
import { spawn, type ChildProcess } from 'node:child_process';

/** How long one read may take, how long all the reads of one look at the host may take (counted from when the
 * reading process listens), and how long that process may take to start (Node on a loaded host or under TCG).
 * The first two hold on a host where that process starts within `briskStartMs`; where it takes longer, both are
 * stretched by as much (see `Sidecar.started`). */
export const TIME = { readMs: 3000, totalMs: 15_000, startMs: 60_000, briskStartMs: 500 };

export type FileType =
  'regular file' | 'directory' | 'socket' | 'FIFO' | 'character device' | 'block device' | 'symbolic link' | 'unknown';

/** What stat says about a path: enough to judge it without opening it. */
export interface FileFact {
  type: FileType;
  /** Permission bits and setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
}

/** What a bounded read gives: the value, or why there is none (an errno code, or that it took too long). */
export type Within<T> = { ok: T } | { error: string };

/** An error that says the answer did not come in time (as opposed to the kernel's own answer, ENOENT, ...). */
export const isLate = (w: Within<unknown>) => 'error' in w && /^(no answer|not read)/.test(w.error);

type Request =
  | { op: 'cmdline'; path: string; max: number; argv0: string }
  | { op: 'stat'; path: string }
  | { op: 'read'; path: string; pos: number; len: number };

/**
 * The child's program. Once it listens it says {"ready":true}; then it takes one JSON request per line on stdin
 * and answers each, as soon as it is done, with one JSON line on stdout: {id, ok} or {id, error}. Requests run
 * at the same time, on its own thread pool.
 * It must not refer to anything outside itself: it is sent to the child as its source text.
 */
function sidecar(fs: typeof import('node:fs')): void {
  const O_PATH = 0o10000000;
  const READ = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
  type Cb<T> = (e: NodeJS.ErrnoException | null, v: T) => void;
  const p = <T>(f: (cb: Cb<T>) => void) => new Promise<T>((res, rej) => f((e, v) => (e ? rej(e) : res(v))));
  const open = (path: string, flags: number) => p<number>((cb) => fs.open(path, flags, cb));
  const close = (fd: number) => p<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
  const read = (fd: number, len: number, pos: number | null) =>
    p<Buffer>((cb) => {
      const buf = Buffer.alloc(len);
      fs.read(fd, buf, 0, len, pos, (e, n) => cb(e, buf.subarray(0, n)));
    });
  const type = (st: import('node:fs').Stats) =>
    st.isFile()
      ? 'regular file'
      : st.isDirectory()
        ? 'directory'
        : st.isSocket()
          ? 'socket'
          : st.isFIFO()
            ? 'FIFO'
            : st.isCharacterDevice()
              ? 'character device'
              : st.isBlockDevice()
                ? 'block device'
                : st.isSymbolicLink()
                  ? 'symbolic link'
                  : 'unknown';
  const ops = {
    async cmdline(r: { path: string; max: number; argv0: string }) {
      const fd = await open(r.path, READ);
      try {
        const chunks: Buffer[] = [];
        let total = 0;
        for (;;) {
          const b = await read(fd, Math.min(r.max + 1 - total, 1 << 16), null);
          if (b.length === 0) break;
          chunks.push(b);
          total += b.length;
          if (total > r.max) break;
          if (chunks.length === 1) {
            // Only a QEMU's command line is read past its first chunk.
            const first = b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)).toString('utf8');
            if (!new RegExp(r.argv0).test(first.slice(first.lastIndexOf('/') + 1))) break;
          }
        }
        return { text: Buffer.concat(chunks).subarray(0, r.max).toString('utf8'), truncated: total > r.max };
      } finally {
        await close(fd);
      }
    },
    async stat(r: { path: string }) {
      const st = await p<import('node:fs').Stats>((cb) => fs.stat(r.path, cb));
      return { type: type(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    },
    async read(r: { path: string; pos: number; len: number }) {
      const pathFd = await open(r.path, O_PATH);
      try {
        const st = await p<import('node:fs').Stats>((cb) => fs.fstat(pathFd, cb));
        if (!st.isFile()) throw Object.assign(new Error(), { code: `not opened: a ${type(st)}` });
        const fd = await open(`/proc/self/fd/${pathFd}`, READ);
        try {
          return (await read(fd, r.len, r.pos)).toString('base64');
        } finally {
          await close(fd);
        }
      } finally {
        await close(pathFd);
      }
    },
  };
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const r = JSON.parse(buf.slice(0, nl)) as { id: number; op: keyof typeof ops };
      buf = buf.slice(nl + 1);
      (ops[r.op] as (r: never) => Promise<unknown>)(r as never).then(
        (ok) => process.stdout.write(JSON.stringify({ id: r.id, ok }) + '\n'),
        (e: NodeJS.ErrnoException) =>
          process.stdout.write(JSON.stringify({ id: r.id, error: e.code ?? e.message }) + '\n'),
      );
    }
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdout.write('{"ready":true}\n');
}

/** Threads the child has for file system calls, and so reads it is given at once. */
const THREADS = 16;

/**
 * One child answering the reads of one look at the host, until `close`. It is given THREADS reads at a time, so
 * that each read's time counts from when the child can start it: a read that does not answer in time keeps
 * its thread, and its place, until the kernel answers it; the reads after it wait here, where the deadline of
 * the whole look still reaches them.
 */
export class Sidecar {
  private child: ChildProcess | undefined;
  private failed: string | undefined;
  private next = 0;
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];
  /** The reads sent, by id: `done` is gone once a read is given up, the place is freed when it answers. */
  private readonly sent = new Map<number, { done: ((w: Within<unknown>) => void) | undefined }>();

  /** Whether the child said it listens, by the deadline. A read's time starts then: where starting Node takes
   * seconds (a loaded host, a TCG virtual machine), that is not counted against the first reads. */
  private ready: Promise<boolean> | undefined;
  private onReady: ((ok: boolean) => void) | undefined;

  /** How many times TIME's read and total times this host is given: 1 where the child started briskly. */
  private stretch = 1;

  /** `deadline`: ms since the epoch after which no read is waited for. */
  constructor(private deadline = Date.now() + TIME.totalMs) {}

  /**
   * Start the child and wait until it listens (at most TIME.startMs), then give the reads their time from there:
   * how long Node takes to start on a loaded host is not taken from what the host's reads may take. That start is
   * also the measure of how fast this host answers at all: where it took longer than TIME.briskStartMs (a host
   * whose cores are all busy, a TCG virtual machine, a Node.js run without its compiler), each read and the whole
   * look get as many times longer, so that a slow host's own QEMUs are not listed as unread while a read that
   * never answers is still given up. Returns the deadline of the reads.
   */
  async started(): Promise<number> {
    const from = Date.now();
    this.start();
    if (this.ready && (await this.ready)) this.stretch = Math.max(1, (Date.now() - from) / TIME.briskStartMs);
    this.deadline = Date.now() + TIME.totalMs * this.stretch;
    return this.deadline;
  }

  private start(): ChildProcess | undefined {
    if (this.child || this.failed) return this.child;
    const env: NodeJS.ProcessEnv = { ...process.env, UV_THREADPOOL_SIZE: String(THREADS) };
    delete env.NODE_OPTIONS;
    try {
      // Compiled with esbuild's keepNames (as tsx does), named functions are wrapped in a __name() helper that
      // lives outside the function's text: the child gets one that does nothing.
      const source = `const __name = (f) => f;\n(${sidecar.toString()})(require('node:fs'));`;
      // A Node.js run without its compiler (--jitless: on an SELinux host whose policy denies the administrator
      // writable code, it would abort) starts the child the same way.
      const flags = process.execArgv.filter((a) => a === '--jitless');
      this.child = spawn(process.execPath, [...flags, '-e', source], {
        env,
        stdio: ['pipe', 'pipe', 'ignore'],
      });
    } catch (e) {
      this.failed = (e as Error).message;
      return undefined;
    }
    this.ready = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), TIME.startMs);
      this.onReady = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
    });
    // An answer can be a few hundred KB long: each chunk is searched for the end of a line once, not the whole
    // answer again with every chunk.
    let buf = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      let from = buf.length;
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n', from)) >= 0) {
        const m = JSON.parse(buf.slice(0, nl)) as ({ id: number } & Within<unknown>) | { ready: true };
        buf = buf.slice(nl + 1);
        from = 0;
        if ('ready' in m) {
          this.onReady?.(true);
          continue;
        }
        const read = this.sent.get(m.id);
        if (!read) continue;
        this.sent.delete(m.id);
        read.done?.('ok' in m ? { ok: m.ok } : { error: m.error });
        this.release();
      }
    });
    const gone = (why: string) => {
      this.failed ??= why;
      this.onReady?.(false);
      for (const read of this.sent.values()) read.done?.({ error: `not read: ${why}` });
      this.sent.clear();
      for (const go of this.queue.splice(0)) go();
    };
    this.child.on('error', (e) => gone(`the reading process failed (${e.message})`));
    this.child.on('exit', (code, signal) => gone(`the reading process ended (${signal ?? code})`));
    this.child.stdin!.on('error', () => gone('the reading process ended'));
    return this.child;
  }

  /** A place among the reads the child is given at once; false when the deadline comes first. */
  private place(): Promise<boolean> {
    if (this.inFlight < THREADS) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const go = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          const i = this.queue.indexOf(go);
          if (i >= 0) this.queue.splice(i, 1);
          resolve(false);
        },
        Math.max(0, this.deadline - Date.now()),
      );
      this.queue.push(go);
    });
  }

  private release(): void {
    const go = this.queue.shift();
    if (go) go();
    else this.inFlight--;
  }

  private async ask<T>(r: Request): Promise<Within<T>> {
    const late = { error: 'not read: the time for reading this host was used up' };
    if (Date.now() >= this.deadline) return late;
    const child = this.start();
    if (!child || !(await this.ready))
      return this.failed
        ? { error: `not read: the reading process did not start (${this.failed})` }
        : { error: 'not read: the reading process did not start in the time for reading this host' };
    if (!(await this.place())) return late;
    if (this.failed) return { error: `not read: ${this.failed}` };
    const id = this.next++;
    const ms = Math.max(0, Math.min(Math.round(TIME.readMs * this.stretch), this.deadline - Date.now()));
    return new Promise((resolve) => {
      const read: { done: ((w: Within<unknown>) => void) | undefined } = {
        done: (w) => {
          clearTimeout(timer);
          resolve(w as Within<T>);
        },
      };
      const timer = setTimeout(() => {
        read.done = undefined;
        resolve({ error: `no answer within ${ms} ms` });
      }, ms);
      this.sent.set(id, read);
      child.stdin!.write(JSON.stringify({ id, ...r }) + '\n');
    });
  }

  /** At most `max` bytes of a command line; past its first chunk only when its program matches `argv0`. */
  cmdline(path: string, max: number, argv0: RegExp): Promise<Within<{ text: string; truncated: boolean }>> {
    return this.ask({ op: 'cmdline', path, max, argv0: argv0.source });
  }

  /** stat (following symbolic links, as QEMU opens the path): it opens nothing. */
  stat(path: string): Promise<Within<FileFact>> {
    return this.ask({ op: 'stat', path });
  }

  /** `len` bytes at `pos` of a regular file; anything else is refused unopened ("not opened: a FIFO"). */
  async read(path: string, pos: number, len: number): Promise<Within<Buffer>> {
    const w = await this.ask<string>({ op: 'read', path, pos, len });
    return 'ok' in w ? { ok: Buffer.from(w.ok, 'base64') } : w;
  }

  /** End the child (and whatever call of its still waits). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
