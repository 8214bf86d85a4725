// Tree search over sandbox snapshots.
//
//   CONTREE_URL=http://127.0.0.1:8080 CONTREE_TOKEN=... npx tsx packages/sdk/examples/tree-search.ts
//
// In this repository `@contree/sdk` resolves to packages/sdk/src (the `paths` of tsconfig.json); in
// your own project, after `npm i @contree/sdk tsx` (or the packed tarball), `npx tsx tree-search.ts`.
//
// Every run produces a new immutable image, so exploring alternatives is just running several commands
// from the same image, and rolling back is running from an older one. Each branch appends a number to a
// file and scores the whole sequence with shell arithmetic; the best branch is expanded again; finally we
// go back to an earlier image and show that its file is still the old one.

import { ContreeClient, type ImageHandle, isNotFound, type RunResult } from "@contree/sdk";

interface Node {
  label: string;
  image: ImageHandle;
  parent: Node | null;
  score: number | null;
  chosen: boolean;
  children: Node[];
}

const FILE = "/tmp/tree-search/sequence";
const SCORE = `s=0; for x in $(cat ${FILE}); do s=$(( (s * 31 + x * 17) % 101 )); done; echo $s`;

function ensureOk(what: string, r: RunResult): RunResult {
  if (r.exitCode !== 0) throw new Error(`${what}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  if (!r.image) throw new Error(`${what}: no result image`);
  return r;
}

async function expand(from: Node, numbers: number[]): Promise<Node[]> {
  // All branches start from the same image, in parallel.
  const children = await Promise.all(
    numbers.map(async (n) => {
      const r = ensureOk(`append ${n}`, await from.image.runAndWait(`echo ${n} >> ${FILE} && ${SCORE}`));
      const score = Number(r.stdout.trim());
      if (!Number.isInteger(score))
        throw new Error(`append ${n}: unexpected output ${JSON.stringify(r.stdout)}`);
      const node: Node = {
        label: `+${n}`,
        image: r.image!,
        parent: from,
        score,
        chosen: false,
        children: [],
      };
      return node;
    }),
  );
  from.children.push(...children);
  return children;
}

function best(nodes: Node[]): Node {
  const top = nodes.reduce((a, b) => ((b.score ?? -1) > (a.score ?? -1) ? b : a));
  top.chosen = true;
  return top;
}

function printTree(node: Node, prefix = "", last = true, root = true): void {
  const branch = root ? "" : last ? "└─ " : "├─ ";
  const score = node.score === null ? "" : ` score=${node.score}`;
  console.log(
    `${prefix}${branch}${node.label}${score} ${node.image.uuid.slice(0, 8)}${node.chosen ? "  *" : ""}`,
  );
  const next = root ? "" : prefix + (last ? "   " : "│  ");
  node.children.forEach((c, i) => {
    printTree(c, next, i === node.children.length - 1, false);
  });
}

async function main(): Promise<void> {
  const client = new ContreeClient();
  const ref = process.env["CONTREE_IMAGE"] || "busybox:latest";

  let base: ImageHandle;
  try {
    base = await client.images.get(ref);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    console.log(`${ref} not found; importing it`);
    base = await (await client.images.import(ref, { tag: ref })).wait();
  }
  console.log(`base image ${ref} = ${base.uuid}`);

  const start = ensureOk("init", await base.runAndWait(`mkdir -p /tmp/tree-search && : > ${FILE}`));
  const root: Node = {
    label: "root",
    image: start.image!,
    parent: null,
    score: null,
    chosen: true,
    children: [],
  };

  const round1 = best(await expand(root, [3, 5, 8, 13]));
  console.log(`round 1 best: ${round1.label} (score ${round1.score})`);
  const round2 = best(await expand(round1, [21, 34, 55]));
  console.log(`round 2 best: ${round2.label} (score ${round2.score})`);

  // Roll back: run from the round-1 image; the round-2 append is not there.
  const older = ensureOk("cat older", await round1.image.runAndWait(`cat ${FILE}`)).stdout;
  const newer = ensureOk("cat newer", await round2.image.runAndWait(`cat ${FILE}`)).stdout;
  console.log(`round-1 image ${FILE}: ${JSON.stringify(older)}`);
  console.log(`round-2 image ${FILE}: ${JSON.stringify(newer)}`);
  if (older === newer) throw new Error("rolled-back image shows the same content as the newer one");
  if (!newer.startsWith(older)) throw new Error("the newer sequence does not extend the older one");

  // The same file read without starting a sandbox (inspect API).
  const inspected = await round2.image.read(FILE, { as: "text" });
  if (inspected !== newer) throw new Error(`inspect read ${JSON.stringify(inspected)} != run output`);

  // Branch off the rolled-back image: a different future for the same past.
  const alt = ensureOk("alt", await round1.image.runAndWait(`echo 99 >> ${FILE} && cat ${FILE}`));
  round1.children.push({
    label: "+99 (after rollback)",
    image: alt.image!,
    parent: round1,
    score: null,
    chosen: false,
    children: [],
  });
  if (alt.stdout === newer) throw new Error("branch after rollback did not diverge");

  // The server records lineage too: image → operation → input image.
  const parent = await round2.image.parent();
  if (parent && parent.uuid !== round1.image.uuid) {
    throw new Error(`server lineage says ${parent.uuid}, expected ${round1.image.uuid}`);
  }
  console.log(`server lineage of best image: parent ${parent ? parent.uuid.slice(0, 8) : "(not recorded)"}`);

  const tagged = await round2.image.tag("tree-search/best");
  try {
    const again = await client.images.get("tag:tree-search/best");
    if (again.uuid !== tagged.uuid) throw new Error("tag did not resolve to the best image");
  } finally {
    await tagged.untag("tree-search/best");
  }

  console.log("\nlineage explored (* = chosen):");
  printTree(root);
}

main().catch((e: unknown) => {
  console.error("tree-search failed:", e);
  process.exit(1);
});
