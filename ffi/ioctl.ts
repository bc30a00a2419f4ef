/**
 * The Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h, used by x86-64):
 * bits 0-7 the number, 8-15 the type (a subsystem's magic), 16-29 the argument size,
 * 30-31 the direction as seen from user space (write = user → kernel).
 */
const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

/** Build a request number. Returned as a number: every value fits in 32 bits. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << SIZEBITS) throw new RangeError(`ioctl argument size ${size} too large`);
  // Multiplication instead of << so bit 31 (IOC_READ) does not turn the result negative.
  return dir * 2 ** DIRSHIFT + size * 2 ** SIZESHIFT + type * 2 ** TYPESHIFT + nr * 2 ** NRSHIFT;
}

export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number =>
  _IOC(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number =>
  _IOC(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number =>
  _IOC(IOC_READ | IOC_WRITE, type, nr, size);
