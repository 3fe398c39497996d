// The answer sources `import` knows, one record each (src/sources/common.ts ImportSource): a new source is its
// module and one line here.
import type { ImportSource } from './common.js';
import { libvirt } from './libvirt.js';
import { proxmox } from './proxmox.js';

export const IMPORT_SOURCES: readonly ImportSource[] = [libvirt, proxmox];
