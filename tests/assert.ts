// The one place tests import assertions from: swapping to @std/assert later is a one-line change.
export {
  deepEqual,
  doesNotThrow,
  equal,
  match,
  notEqual,
  ok,
  rejects,
  throws,
} from "node:assert/strict";
