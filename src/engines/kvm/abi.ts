/**
 * The Linux KVM ABI for x86-64 as typevisor uses it: ioctl numbers, capability
 * and exit codes, and byte offsets inside `struct kvm_run` (linux/kvm.h,
 * arch/x86/include/uapi/asm/kvm.h).
 */

const KVMIO = 0xae;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number): number => ioc(IOC_NONE, nr, 0);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, nr, size);
const ior = (nr: number, size: number): number => ioc(IOC_READ, nr, size);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, nr, size);

/** Sizes of the fixed structures passed to ioctls. */
export const KVM_REGS_SIZE = 144;
export const KVM_SREGS_SIZE = 312;
export const KVM_SEGMENT_SIZE = 24;
export const KVM_CPUID_ENTRY2_SIZE = 40;
export const KVM_MSR_ENTRY_SIZE = 16;
export const KVM_IRQ_ROUTING_ENTRY_SIZE = 48;
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;

export const Ioctl = {
  GET_API_VERSION: io(0x00),
  CREATE_VM: io(0x01),
  CHECK_EXTENSION: io(0x03),
  GET_VCPU_MMAP_SIZE: io(0x04),
  GET_SUPPORTED_CPUID: iowr(0x05, 8),
  CREATE_VCPU: io(0x41),
  SET_USER_MEMORY_REGION: iow(0x46, KVM_USERSPACE_MEMORY_REGION_SIZE),
  SET_TSS_ADDR: io(0x47),
  SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  CREATE_IRQCHIP: io(0x60),
  IRQ_LINE: iow(0x61, 8),
  SET_GSI_ROUTING: iow(0x6a, 8),
  CREATE_PIT2: iow(0x77, 64),
  SIGNAL_MSI: iow(0xa5, 32),
  IRQFD: iow(0x76, 32),
  IOEVENTFD: iow(0x79, 64),
  RUN: io(0x80),
  GET_REGS: ior(0x81, KVM_REGS_SIZE),
  SET_REGS: iow(0x82, KVM_REGS_SIZE),
  GET_SREGS: ior(0x83, KVM_SREGS_SIZE),
  SET_SREGS: iow(0x84, KVM_SREGS_SIZE),
  GET_MSRS: iowr(0x88, 8),
  SET_MSRS: iow(0x89, 8),
  SET_CPUID2: iow(0x90, 8),
  GET_MP_STATE: ior(0x98, 4),
  SET_MP_STATE: iow(0x99, 4),
} as const;

export const KVM_API_VERSION = 12;

export const Cap = {
  IRQCHIP: 0,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  PIT2: 33,
  SET_IDENTITY_MAP_ADDR: 37,
  IRQ_ROUTING: 25,
  IRQFD: 32,
  IOEVENTFD: 36,
  MAX_VCPUS: 66,
  SIGNAL_MSI: 77,
  IMMEDIATE_EXIT: 136,
} as const;

/** Capabilities the engine cannot work without, with a name for error messages. */
export const REQUIRED_CAPS: readonly (readonly [number, string])[] = [
  [Cap.IRQCHIP, 'KVM_CAP_IRQCHIP'],
  [Cap.USER_MEMORY, 'KVM_CAP_USER_MEMORY'],
  [Cap.SET_TSS_ADDR, 'KVM_CAP_SET_TSS_ADDR'],
  [Cap.EXT_CPUID, 'KVM_CAP_EXT_CPUID'],
  [Cap.PIT2, 'KVM_CAP_PIT2'],
  [Cap.IRQ_ROUTING, 'KVM_CAP_IRQ_ROUTING'],
  [Cap.SIGNAL_MSI, 'KVM_CAP_SIGNAL_MSI'],
  [Cap.IMMEDIATE_EXIT, 'KVM_CAP_IMMEDIATE_EXIT'],
];

export const ExitReason = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

export const SystemEvent = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const InternalErrorSuberror: Record<number, string> = {
  1: 'emulation failure',
  2: 'simultaneous exceptions',
  3: 'delivery event (exit during event delivery)',
  4: 'unexpected exit reason',
};

/** Byte offsets inside struct kvm_run. */
export const RunOffset = {
  REQUEST_INTERRUPT_WINDOW: 0,
  IMMEDIATE_EXIT: 1,
  EXIT_REASON: 8,
  // union at 32
  IO_DIRECTION: 32,
  IO_SIZE: 33,
  IO_PORT: 34,
  IO_COUNT: 36,
  IO_DATA_OFFSET: 40,
  MMIO_PHYS_ADDR: 32,
  MMIO_DATA: 40,
  MMIO_LEN: 48,
  MMIO_IS_WRITE: 52,
  FAIL_ENTRY_REASON: 32,
  FAIL_ENTRY_CPU: 40,
  INTERNAL_SUBERROR: 32,
  INTERNAL_NDATA: 36,
  INTERNAL_DATA: 40,
  SYSTEM_EVENT_TYPE: 32,
} as const;

export const IrqRoutingType = { IRQCHIP: 1, MSI: 2 } as const;
export const IrqChip = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const;
export const KVM_PIT_SPEAKER_DUMMY = 1;
export const KVM_CPUID_FLAG_SIGNIFICANT_INDEX = 1;
export const KVM_MAX_CPUID_ENTRIES = 256;

export const MpState = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;

/** mmap(2) constants for x86-64 Linux. */
export const Mmap = {
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 0x01,
  MAP_PRIVATE: 0x02,
  MAP_ANONYMOUS: 0x20,
  MAP_NORESERVE: 0x4000,
} as const;

/** MSR indices used by the engine. */
export const Msr = {
  IA32_APIC_BASE: 0x1b,
  IA32_MISC_ENABLE: 0x1a0,
  IA32_TSC: 0x10,
  EFER: 0xc0000080,
  STAR: 0xc0000081,
  LSTAR: 0xc0000082,
  CSTAR: 0xc0000083,
  SFMASK: 0xc0000084,
  FS_BASE: 0xc0000100,
  GS_BASE: 0xc0000101,
  KERNEL_GS_BASE: 0xc0000102,
} as const;

/** Where the engine puts KVM's TSS (3 pages) and identity-map (1 page) in the MMIO hole. */
export const KVM_TSS_ADDR = 0xfffbc000;
export const KVM_IDENTITY_MAP_ADDR = 0xfffbf000;
