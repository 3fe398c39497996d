// `qemu-harden rollback`: install again the bundle the record holds as `previous`, byte for byte, through the same
// walk as apply (removed files come back, files the later bundle added go). After an interrupted apply it
// restores the bundle that was completely installed before that apply began; an interrupted rollback it completes.
// On an enrolled host (or with --signers) the recorded bundle must carry the signatures the trust file requires,
// as a bundle applied would.
import { InputError } from '../errors.js';
import type { Io } from '../io.js';
import { RECORD_ADMISSION, signatureAdmission, type SigningOptions } from './admit.js';
import { intactPrevious, readRecord } from './record.js';
import { runInstall, type InstallOptions, type Installed } from './run.js';

export async function rollback(
  rootArg: string,
  o: InstallOptions,
  io: Io,
  signing: SigningOptions = {},
): Promise<Installed> {
  return runInstall('rollback', rootArg, o, io, async (tree) => {
    const signatures = signatureAdmission(tree, signing);
    const record = readRecord(tree);
    const j = record.journal;
    const interrupted = j && record.current?.manifestHash !== j.to;
    // A rollback that stopped midway is completed: its target waits in `next`, and what it printed was "run
    // rollback again to complete it". After an apply that stopped midway the bundle installed before it is
    // `current`, or, when the install was killed between the two moves of its commit, `previous` holding what was
    // `current` (recover() moves it back).
    const completing = interrupted && j.action === 'rollback' && record.next?.manifestHash === j.to;
    const target = completing
      ? record.next
      : interrupted
        ? (record.current ??
          (record.previous?.manifestHash === j.from ? intactPrevious(record, 'cannot roll back') : undefined))
        : intactPrevious(record, 'nothing to roll back to');
    if (!target)
      throw new InputError(
        interrupted
          ? `nothing to roll back to: the interrupted ${j.action} was the first install under ${tree.root}; run apply again to complete it`
          : `nothing to roll back to: ${record.dir} holds no previous bundle`,
      );
    return {
      bundle: target,
      admission: [...signatures, ...RECORD_ADMISSION],
      record,
      note: completing
        ? 'The last rollback stopped midway; completing it.\n'
        : interrupted
          ? `The last ${j.action} stopped midway; rolling back to the bundle installed before it.\n`
          : undefined,
    };
  });
}
