import type { Draft } from './draft.js';
import { g, setGuestKey, type Field, type Step } from './fields.js';

interface Pci {
  address: string;
  iommuGroup: number;
}

interface Usb {
  vendorId: string;
  productId: string;
  port?: string;
}

export const passthrough: Step = {
  id: 'passthrough',
  title: 'Passthrough',
  perGuest: true,
  why: [
    'A passed-through device is driven by the guest directly and can be buggy or hostile itself. An IOMMU',
    'group is the unit of isolation: every function in it goes to the same guest. Each device you pick is a',
    'risk you will be asked to accept, and udev gives its node to this guest’s user alone.',
  ],
  notes: (ctx) => {
    if (!ctx.host) return ['Waiting for the host probe…'];
    const split = ctx.host.pci.filter((p) => p.iommuGroup !== null && p.groupMates.length > 0);
    return [
      ctx.host.iommuGroups === 0
        ? 'No IOMMU groups on this host: PCI passthrough is not possible here.'
        : `${ctx.host.pci.length} PCI devices, ${ctx.host.usb.length} USB devices.`,
      ...(split.length
        ? ['Devices that share an IOMMU group with others are marked "+N": all of the group goes to one guest.']
        : []),
    ];
  },
  scope: (ctx) => [{ path: g(ctx, 'passthrough'), label: 'Passthrough' }],
  fields: (ctx) => {
    const h = ctx.host;
    if (!h) return [];
    const pciOf = (d: Draft) => ((d.guests[ctx.guest]!.passthrough as { pci?: Pci[] } | undefined)?.pci ?? []) as Pci[];
    const usbOf = (d: Draft) => ((d.guests[ctx.guest]!.passthrough as { usb?: Usb[] } | undefined)?.usb ?? []) as Usb[];
    const write = (d: Draft, pci: Pci[], usb: Usb[]) => setGuestKey(d, ctx.guest, 'passthrough', { pci, usb });
    /** Where a picked device's entry is (or would go) in the guest's list: what its toggle fills. */
    const slot = (i: number, list: unknown[]) => (i >= 0 ? i : list.length);
    const same = (p: { address: string }) => (x: Pci) => x.address === p.address;
    const pci: Field[] = h.pci
      .filter((p) => p.iommuGroup !== null)
      .slice(0, 12)
      .map((p): Field => ({
        label: `PCI ${p.address} group ${p.iommuGroup}${p.groupMates.length ? ` +${p.groupMates.length}` : ''}`,
        kind: 'toggle',
        path: ['$pci', p.address],
        writes: ['address', 'iommuGroup'].map((k) =>
          g(ctx, 'passthrough', 'pci', slot(pciOf(ctx.draft).findIndex(same(p)), pciOf(ctx.draft)), k),
        ),
        hint: p.groupMates.length ? `${p.description}; its group also holds ${p.groupMates.join(', ')}` : p.description,
        value: (d: Draft) => pciOf(d).some(same(p)),
        set: (d, v) =>
          write(
            d,
            v ? [...pciOf(d), { address: p.address, iommuGroup: p.iommuGroup! }] : pciOf(d).filter((x) => !same(p)(x)),
            usbOf(d),
          ),
      }));
    const sameUsb = (u: { vendorId: string; productId: string }) => (x: Usb) =>
      x.vendorId === u.vendorId && x.productId === u.productId;
    const usb: Field[] = h.usb.slice(0, 8).flatMap((u): Field[] => {
      const at = usbOf(ctx.draft).findIndex(sameUsb(u));
      const toggle: Field = {
        label: `USB ${u.vendorId}:${u.productId} ${u.description}`.slice(0, 40),
        kind: 'toggle',
        path: ['$usb', `${u.vendorId}:${u.productId}`],
        writes: ['vendorId', 'productId'].map((k) => g(ctx, 'passthrough', 'usb', slot(at, usbOf(ctx.draft)), k)),
        value: (d: Draft) => usbOf(d).some(sameUsb(u)),
        set: (d, v) =>
          write(
            d,
            pciOf(d),
            v
              ? [...usbOf(d), { vendorId: u.vendorId, productId: u.productId }]
              : usbOf(d).filter((x) => !sameUsb(u)(x)),
          ),
      };
      if (at < 0) return [toggle];
      return [
        toggle,
        {
          label: `USB ${u.vendorId}:${u.productId} port`,
          kind: 'text',
          path: g(ctx, 'passthrough', 'usb', at, 'port'),
          hint: 'empty: any port; bus-port as under /sys/bus/usb/devices (1-2, 1-2.3), for two alike devices',
        },
      ];
    });
    return [...pci, ...usb];
  },
};
