// `qemu-harden rollback`: install again the bundle the record holds as `previous`, byte for byte, through the same
// steps as apply (removed files come back, files the later bundle added go). After an interrupted install it
// restores the bundle that was completely installed before that install began.
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from './errors.js';
import type { Io } from './io.js';
import { runInstall, type InstallOptions, type Outcome } from './lifecycle.js';
import { readRecord, recover, RECORD_DIR } from './record.js';

export async function rollback(rootArg: string, o: InstallOptions, io: Io): Promise<Outcome> {
  if (!existsSync(rootArg)) throw new InputError(`--root: ${rootArg} does not exist`);
  const rec = readRecord(realpathSync(resolve(rootArg)));
  const interrupted = rec.journal && rec.current?.manifestHash !== rec.journal.to;
  recover(rec, o.dryRun);
  const target = interrupted ? rec.current : rec.previous;
  if (!target)
    throw new InputError(
      interrupted
        ? `nothing to roll back to: the interrupted ${rec.journal!.action} was the first install under ${rootArg}; run apply again to complete it`
        : `nothing to roll back to: ${resolve(rootArg, RECORD_DIR)} holds no previous bundle`,
    );
  if (interrupted)
    io.out(`The last ${rec.journal!.action} stopped midway; rolling back to the bundle installed before it.\n`);
  return runInstall('rollback', target.dir, rootArg, o, io);
}
