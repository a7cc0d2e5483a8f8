/**
 * virtio: the transport-independent core and device interface, the split
 * virtqueue, the PCI transport, and the block and entropy devices.
 */

export * from './virtio.js';
export * from './virtqueue.js';
export * from './virtio-pci.js';
export * from './blk.js';
export * from './rng.js';
