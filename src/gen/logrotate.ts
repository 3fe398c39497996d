// The bound on each guest's serial log. Every byte in it comes from the guest, and QEMU's chardev log has no
// size limit of its own, so logrotate, started every minute by a timer, copies a log that has passed the limit
// aside and truncates it in place (QEMU appends, so it goes on at the new end). On disk a guest's logs then hold
// at most (ROTATE + 1) × SERIAL_LOG_MAX, plus whatever the guest writes between two runs.
import { GENERATED } from '../bundle-layout.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';

export const CONFIG_PATH = '/etc/qemu-harden/logrotate.conf';
export const STATE_PATH = '/var/lib/qemu-harden/logrotate.status';
export const SERIAL_LOG_MAX = '1M';
export const ROTATE = 4;
export const INTERVAL = '1min';
/** The same limits in words, for the READMEs. */
export const IN_WORDS = { size: '1 MiB', interval: 'minute' };

export function logrotateConfig(a: Answers): string | undefined {
  const guests = a.guests.filter((g) => g.serial.enabled);
  if (guests.length === 0) return undefined;
  const lines = [
    GENERATED,
    `# Read by qemu-harden-logrotate.service every ${IN_WORDS.interval}. A serial log over ${IN_WORDS.size} is copied to serial.log.1 (older`,
    `# copies move up to serial.log.${ROTATE}, the oldest is removed) and truncated in place, as the guest's own user.`,
  ];
  for (const g of guests) {
    const u = G.userName(g);
    lines.push(
      '',
      `# Guest ${g.name}.`,
      `${G.serialLog(g)} {`,
      `    su ${u} ${u}`,
      `    size ${SERIAL_LOG_MAX}`,
      `    rotate ${ROTATE}`,
      '    copytruncate',
      '    missingok',
      '    notifempty',
      '    nocompress',
      '    nomail',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}
