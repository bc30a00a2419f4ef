// The x86-64 sandbox's guarantees (tests/scripts/sandbox_cases.ts); the arm64 sandbox's are in
// sandbox_arm64_test.ts, which scripts/test.sh runs beside the x86-64 KVM suite.
import { sandboxTests, X86_64 } from "./sandbox_cases.ts";

sandboxTests(X86_64);
