/**
 * The platform's legacy devices in one import: UART, i8042, CMOS RTC, reset
 * registers, POST port, ACPI PM block, isa-debug-exit, pc-testdev and fw_cfg,
 * plus the SystemEvent type they raise and the host clock/timer interfaces.
 */

export * from './system-event.js';
export * from './host-clock.js';
export * from './serial/uart-16550.js';
export * from './legacy/i8042.js';
export * from './legacy/cmos-rtc.js';
export * from './legacy/reset-control.js';
export * from './legacy/post-port.js';
export * from './acpi/acpi-pm.js';
export * from './debug/debug-exit.js';
export * from './debug/pc-testdev.js';
export * from './firmware/fw-cfg.js';
