/**
 * virtio: the transport-independent core and device interface, the split
 * virtqueue, the PCI transport, and the block, network, entropy and vsock
 * devices with their host backends.
 */

export * from './virtio.js';
export * from './virtqueue.js';
export * from './virtio-pci.js';
export * from './blk.js';
export * from './rng.js';
export * from './net.js';
export * from './vsock.js';
export * from './backends/tap.js';
