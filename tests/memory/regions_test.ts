import { equal, throws } from "../assert.ts";
import { MemoryLayoutError, parseSize } from "../../src/memory/regions.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

Deno.test("parseSize: suffixes are binary units and a bare number is MiB", () => {
  equal(parseSize("256M"), 256 * MiB);
  equal(parseSize("2G"), 2 * GiB);
  equal(parseSize("3500M"), 3500 * MiB);
  equal(parseSize("1024K"), MiB);
  equal(parseSize("512"), 512 * MiB);
  equal(parseSize("1t"), 1024 * GiB);
  equal(parseSize(" 64m "), 64 * MiB);
});

Deno.test("parseSize: refuses junk, zero, negatives and fractions with a reason", () => {
  throws(() => parseSize(""), /invalid size "": use a whole number/);
  throws(() => parseSize("lots"), /whole number with an optional K, M, G or T suffix/);
  throws(() => parseSize("12Q"), MemoryLayoutError);
  throws(() => parseSize("1G2"), MemoryLayoutError);
  throws(() => parseSize("0"), /must be greater than 0/);
  throws(() => parseSize("0G"), /must be greater than 0/);
  throws(() => parseSize("-1G"), /cannot be negative/);
  throws(() => parseSize("1.5G"), /not a fraction/);
  throws(() => parseSize("99999999999999999999T"), /too large/);
});
