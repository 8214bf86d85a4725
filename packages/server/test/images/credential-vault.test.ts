import { randomUUID } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CredentialVault } from "../../src/images/credential-vault.js";

describe("credential vault", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "contree-vault-"));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  const creds = { username: "alice", password: "s3cret-pässword" };

  it("opens what it sealed, also after reopening with the same key file", async () => {
    const id = randomUUID();
    await (await CredentialVault.open(join(root, "v"))).put(id, creds);
    expect((await readFile(join(root, "v", id))).includes(Buffer.from(creds.password))).toBe(false);
    expect(await (await CredentialVault.open(join(root, "v"))).take(id)).toEqual(creds);
  });

  it("a sealed file moved to another operation, altered, or under another key does not open", async () => {
    const v = await CredentialVault.open(join(root, "v"));
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    await v.put(a, creds);
    await copyFile(join(root, "v", a), join(root, "v", b));
    expect(await v.take(b)).toBe("unreadable");
    const bytes = await readFile(join(root, "v", a));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    await writeFile(join(root, "v", c), bytes);
    expect(await v.take(c)).toBe("unreadable");
    await writeFile(join(root, "v.key"), Buffer.alloc(32, 1));
    expect(await (await CredentialVault.open(join(root, "v"))).take(a)).toBe("unreadable");
    expect(await v.take(randomUUID())).toBeUndefined();
  });

  it("refuses ids that are not operation ids, and sweeps what is over", async () => {
    const v = await CredentialVault.open(join(root, "v"));
    await expect(v.put("../escape", creds)).rejects.toThrow(/not an operation id/);
    const [keep, drop] = [randomUUID(), randomUUID()];
    await v.put(keep, creds);
    await v.put(drop, creds);
    await writeFile(join(root, "v", `${randomUUID()}.tmp`), "half");
    await writeFile(join(root, "v", "not-an-id"), "junk");
    expect(await v.sweep(async (id) => id === keep)).toBe(3);
    expect(await v.take(keep)).toEqual(creds);
    expect(await v.take(drop)).toBeUndefined();
  });
});
