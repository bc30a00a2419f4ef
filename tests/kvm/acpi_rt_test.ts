// The ACPI machine with Debian's rt kernel (./acpi_cases.ts).
import { acpiBootTests } from "./acpi_cases.ts";

acpiBootTests("rt-amd64");
