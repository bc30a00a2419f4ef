// The ACPI machine with Debian's cloud kernel (./acpi_cases.ts).
import { acpiBootTests } from "./acpi_cases.ts";

acpiBootTests("cloud-amd64");
