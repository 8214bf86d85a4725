/**
 * Shared setup of the inspect tests: a real registry seeded with the fixtures plus an "escape"
 * image built here (absolute and `..` symlinks aimed at host files, names with newlines, a
 * binary file, hidden files, an owner known only to the image's /etc/passwd), and a real
 * in-process server with busybox, features and escape imported through the API.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const execFileP = promisify(execFile);
const OCILIB = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "ocilib.sh");

export const ESCAPE_IMAGE = "fixtures/inspect-escape:latest";

const BUILD_ESCAPE = `
set -euo pipefail
. "$OCILIB"
R=$WORK/rootfs; mkdir -p "$R"/{etc,data/sub,home/alice}
printf 'root:x:0:0:root:/root:/bin/sh\\nalice:x:1000:1000::/home/alice:/bin/sh\\n' > "$R/etc/passwd"
printf 'root:x:0:\\nstaff:x:1000:\\n' > "$R/etc/group"
echo "image hosts" > "$R/etc/hosts"
ln -s /etc/shadow "$R/abs-shadow"; ln -s /etc/passwd "$R/abs-passwd"
ln -s ../../../../../../../etc/hosts "$R/dotdot-hosts"; ln -s /../../../etc "$R/etc-link"
ln -s /proc/self/environ "$R/proc-environ"
echo "hello world" > "$R/data/hello.txt"; echo "Hello World" > "$R/data/HELLO.md"
printf 'secret word\\n' > "$R/data/.hidden"; printf 'x\\0hello binary\\n' > "$R/data/bin.dat"
echo "hello backup" > "$R/data/notes.bak"; echo "deep hello" > "$R/data/sub/deep.txt"
printf 'a%.0s' $(seq 40) > "$R/data/redos.txt"; echo >> "$R/data/redos.txt"
seq 1 3000 | sed 's/$/ hello line/' > "$R/data/many.txt"
printf 'one\\ntwo\\nthree hello\\nfour\\nfive\\nsix hello\\nseven\\n' > "$R/data/ctx.txt"
echo mine > "$R/home/alice/file"; chown -R 1000:1000 "$R/home/alice"
echo tab > "$R/data/a"$'\\t'"b"
oci_init "$WORK/oci"
l=$(oci_layer "$WORK/oci" "$R" gzip)
oci_image "$WORK/oci" escape amd64 "" '["/bin/sh"]' "$l" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci:escape" "docker://$REG/${ESCAPE_IMAGE}"
`;

export interface InspectEnv {
  t: TestServer;
  reg: RegistryHandle;
  busybox: string;
  features: string;
  escape: string;
  close(): Promise<void>;
}

export async function importImage(
  t: TestServer,
  reg: RegistryHandle,
  ref: string,
  tag?: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    headers,
    json: { registry: { url: `docker://${reg.host}/${ref}` }, ...(tag ? { tag } : {}) },
  });
  if (r.status !== 202) throw new Error(`import ${ref}: ${r.status} ${await r.text()}`);
  const { uuid } = (await r.json()) as { uuid: string };
  const op =
    Object.keys(headers).length === 0
      ? await waitOperation(t, uuid, 120_000)
      : await waitWith(t, uuid, headers);
  if (op["status"] !== "SUCCESS") throw new Error(`import ${ref}: ${String(op["error"])}`);
  return (op["result"] as { image: string }).image;
}

/** waitOperation for an operation of another project (e.g. with a `Project` header). */
async function waitWith(
  t: TestServer,
  id: string,
  headers: Record<string, string>,
): Promise<Record<string, unknown>> {
  const until = Date.now() + 120_000;
  for (;;) {
    const doc = (await (await t.api(`/v1/operations/${id}`, { headers })).json()) as Record<string, unknown>;
    if (["SUCCESS", "FAILED", "CANCELLED"].includes(String(doc["status"]))) return doc;
    if (Date.now() > until) throw new Error(`operation ${id} still ${String(doc["status"])}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startInspectEnv(): Promise<InspectEnv> {
  const fx = await fixtures();
  const reg = await startRegistry({ seedFrom: fx.registryData });
  const work = await mkdtemp(join(tmpdir(), "contree-inspect-fixture-"));
  let t: TestServer | undefined;
  try {
    await execFileP("bash", ["-c", BUILD_ESCAPE], {
      env: { ...process.env, OCILIB, WORK: work, REG: reg.host },
      timeout: 120_000,
    });
    t = await startTestServer();
    const [busybox, features, escapeImage] = await Promise.all([
      importImage(t, reg, FIXTURE_IMAGES.busybox, "busybox:latest"),
      importImage(t, reg, FIXTURE_IMAGES.features, "features:latest"),
      importImage(t, reg, ESCAPE_IMAGE, "escape:latest"),
    ]);
    const server = t;
    return {
      t: server,
      reg,
      busybox,
      features,
      escape: escapeImage,
      async close() {
        await server.close();
        await reg.stop();
      },
    };
  } catch (err) {
    await t?.close();
    await reg.stop();
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
