// The arm64 sandbox's guarantees (tests/scripts/sandbox_cases.ts), the same as the x86-64 one's
// but for the NMI, which QEMU's arm virt machine does not have. scripts/test.sh runs this file
// beside the x86-64 KVM suite, not with the host's unit tests: each case boots a sandbox.
import { ARM64, sandboxTests } from "./sandbox_cases.ts";

sandboxTests(ARM64);
