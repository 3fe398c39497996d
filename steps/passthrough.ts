import type { Draft } from './draft.js';
import { g, setGuestKey, type Field, type Step } from './fields.js';

interface Pci {
  address: string;
  iommuGroup: number;
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
  scope: (ctx) => [g(ctx, 'passthrough')],
  fields: (ctx) => {
    const h = ctx.host;
    if (!h) return [];
    const pciOf = (d: Draft) => ((d.guests[ctx.guest]!.passthrough as { pci?: Pci[] } | undefined)?.pci ?? []) as Pci[];
    const usbOf = (d: Draft) =>
      (d.guests[ctx.guest]!.passthrough as { usb?: { vendorId: string; productId: string }[] } | undefined)?.usb ?? [];
    const write = (d: Draft, pci: Pci[], usb: { vendorId: string; productId: string }[]) =>
      setGuestKey(d, ctx.guest, 'passthrough', { pci, usb });
    const pci: Field[] = h.pci
      .filter((p) => p.iommuGroup !== null)
      .slice(0, 12)
      .map((p) => ({
        label: `PCI ${p.address} group ${p.iommuGroup}${p.groupMates.length ? ` +${p.groupMates.length}` : ''}`,
        kind: 'toggle',
        path: ['$pci', p.address],
        hint: p.groupMates.length ? `${p.description}; its group also holds ${p.groupMates.join(', ')}` : p.description,
        value: (d: Draft) => pciOf(d).some((x) => x.address === p.address),
        set: (d, v) =>
          write(
            d,
            v
              ? [...pciOf(d), { address: p.address, iommuGroup: p.iommuGroup! }]
              : pciOf(d).filter((x) => x.address !== p.address),
            usbOf(d),
          ),
      }));
    const usb: Field[] = h.usb.slice(0, 8).map((u) => ({
      label: `USB ${u.vendorId}:${u.productId} ${u.description}`.slice(0, 40),
      kind: 'toggle',
      path: ['$usb', `${u.vendorId}:${u.productId}`],
      value: (d: Draft) => usbOf(d).some((x) => x.vendorId === u.vendorId && x.productId === u.productId),
      set: (d, v) =>
        write(
          d,
          pciOf(d),
          v
            ? [...usbOf(d), { vendorId: u.vendorId, productId: u.productId }]
            : usbOf(d).filter((x) => !(x.vendorId === u.vendorId && x.productId === u.productId)),
        ),
    }));
    return [...pci, ...usb];
  },
};
