import { describe, expect, it } from "vitest";
import { hostReport } from "../../src/observability/host-report.js";

describe("hostReport", () => {
  it("names each installed runtime with the first line of its --version", async () => {
    const { lines } = await hostReport();
    for (const bin of ["crun", "runc", "runsc"]) {
      const line = lines.find((l) => l.name === bin);
      expect(line).toMatchObject({ ok: true });
      expect(line?.detail).toMatch(new RegExp(`^${bin} version \\S+$`));
    }
  });
});
