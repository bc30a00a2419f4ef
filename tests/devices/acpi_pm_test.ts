import { deepEqual } from "../assert.ts";
import {
  AcpiPm,
  RESET_OFFSET,
  RESET_VALUE,
  SLEEP_CONTROL_OFFSET,
  SLEEP_STATUS_OFFSET,
  SLP_TYP_S5,
} from "../../src/devices/acpi_pm.ts";

const SLP_EN = 0x20;

Deno.test("acpi_pm: Linux's power-off sequence ends the VM once, at SLP_EN with SLP_TYP S5", () => {
  const ends: string[] = [];
  const pm = new AcpiPm((why) => ends.push(why));
  // acpi_hw_extended_sleep: clear WAK_STS, then write SLP_TYP | SLP_EN.
  pm.write(SLEEP_STATUS_OFFSET, Uint8Array.of(0x80));
  pm.write(SLEEP_CONTROL_OFFSET, Uint8Array.of(SLP_TYP_S5 << 2));
  deepEqual(ends, [], "SLP_TYP without SLP_EN is only a setting");
  pm.write(SLEEP_CONTROL_OFFSET, Uint8Array.of((SLP_TYP_S5 << 2) | SLP_EN));
  deepEqual(ends, ["ACPI power off"]);
});

Deno.test("acpi_pm: other sleep types, other values and reads do nothing", () => {
  const ends: string[] = [];
  const pm = new AcpiPm((why) => ends.push(why));
  for (let type = 0; type < 8; type++) {
    if (type !== SLP_TYP_S5) pm.write(SLEEP_CONTROL_OFFSET, Uint8Array.of((type << 2) | SLP_EN));
  }
  for (let v = 0; v < 256; v++) if (v !== RESET_VALUE) pm.write(RESET_OFFSET, Uint8Array.of(v));
  const data = new Uint8Array(4).fill(0xaa);
  for (const offset of [0, 1, 2]) pm.read(offset, data);
  deepEqual([...data], [0, 0, 0, 0], "WAK_STS never reads set");
  deepEqual(ends, []);
});

Deno.test("acpi_pm: RESET_VALUE at the reset register resets", () => {
  const ends: string[] = [];
  const pm = new AcpiPm((why) => ends.push(why));
  pm.write(RESET_OFFSET, Uint8Array.of(RESET_VALUE));
  deepEqual(ends, ["ACPI reset"]);
});
