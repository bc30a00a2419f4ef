/**
 * The one interrupt vocabulary between devices and the machine. A device raises a level on a
 * line (INTx#, an ISA IRQ) or triggers a message-signalled vector; how either reaches a CPU
 * (KVM_IRQ_LINE on an IOAPIC pin, a GSI route and an irqfd, an ITS on arm64) is the
 * machine's business, behind these interfaces. The PCI layer (MSI, MSI-X) and the device
 * models import only this file.
 *
 * MSI vectors come as a group per function, as Cloud Hypervisor's InterruptSourceGroup does:
 * the function's capability says which vectors are deliverable and with which message, the
 * group turns that into routes (one routing change for a whole batch, none for a vector the
 * guest has masked or not enabled), and `trigger` raises a vector with no allocation.
 */

/** A level-triggered interrupt line (INTx#, or an ISA IRQ pin on the in-kernel PIC/IOAPIC). */
export interface IrqLine {
  setLevel(high: boolean): void;
}

/**
 * One MSI message: the 64-bit address as its two dwords (as the MSI-X table and KVM's routes
 * hold it; one number would lose low bits once the upper dword reaches 2^21), and the data.
 */
export interface MsiMessage {
  addressLo: number;
  addressHi: number;
  data: number;
}

/** A function's MSI or MSI-X vectors, as the machine delivers them. */
export interface MsiVectorGroup {
  /** Raise `vector` with the message last routed for it. Any thread; allocates nothing. */
  trigger(vector: number): void;
  /**
   * The guest made vectors [first, end) deliverable: each gets `message(vector)` as its route
   * (undefined: that vector's route stays as it is). One routing change for the lot, none when
   * nothing changed. Returns false when a vector could not get a route (the group logs why).
   */
  route(first: number, end: number, message: (vector: number) => MsiMessage | undefined): boolean;
  /** MSI or MSI-X was disabled: every vector's route may go. */
  release(): void;
}

/**
 * Plain data every thread attaches a function's vector group from (the group itself is the
 * machine's): one eventfd per vector, which raises it, and the machine's shared state for the
 * group's routes.
 */
export interface MsiVectorsPlan {
  irqFds: number[];
  routes: SharedArrayBuffer;
  /** Starts each log line: the device, and MSI or MSI-X. */
  name: string;
  /**
   * The function's PCI requester ID (bus << 8 | device << 3 | function): an arm64 ITS tells
   * senders apart by it, so every route of the function carries it.
   */
  devid: number;
}
