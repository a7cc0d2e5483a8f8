/**
 * PCI: configuration space, functions with BARs and INTx, MSI-X, and the host
 * bridge (configuration mechanism #1 on bus 0).
 */

export * from './config-space.js';
export * from './pci-function.js';
export * from './msix.js';
export * from './pci-host.js';
