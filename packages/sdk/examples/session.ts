// A session: one current image that every run starts from and moves forward, like `contree use` and
// `contree run` in the official CLI. Every step is an immutable image, so each one is a checkpoint:
// roll back with checkout(), branch with fork().
//
//   CONTREE_URL=http://127.0.0.1:8080 CONTREE_TOKEN=... npx tsx packages/sdk/examples/session.ts
//
// In this repository `@contree/sdk` resolves to packages/sdk/src (the `paths` of the tsconfig); in
// your own project, after `npm i @contree/sdk tsx` (or the packed tarball), `npx tsx session.ts`.

import { ContreeClient, isCommandFailed, isNotFound } from "@contree/sdk";

const STATE = "/app/state";
/** Reads the counter, adds one, writes it back, prints it. */
const INCREMENT = `. ${STATE}; count=$((count + 1)); echo "count=$count" > ${STATE}; echo "$count"`;

/** An output callback that prints whole lines with a prefix (chunks may split or join lines). */
function printLines(prefix: string): (chunk: string) => void {
  let pending = "";
  return (chunk) => {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) console.log(`${prefix}${line}`);
  };
}

async function main(): Promise<void> {
  const client = new ContreeClient();
  const ref = process.env["CONTREE_IMAGE"] || "busybox"; // a bare name means name:latest
  const session = await client.session(ref).catch(async (e: unknown) => {
    if (!isNotFound(e)) throw e;
    console.log(`${ref} not found; importing it`);
    await (await client.images.import(ref, { tag: `${ref}:latest` })).wait();
    return client.session(ref);
  });
  console.log(`start: ${session.image.uuid}`);

  await session.run(`mkdir -p /app && echo count=0 > ${STATE}`, { check: true });
  for (let i = 0; i < 3; i++) {
    // onStdout sees the output as it streams; check: a failure throws instead of moving on.
    await session.run(INCREMENT, {
      check: true,
      onStdout: printLines("  counter says "),
    });
  }

  // A failing step with check: true throws, and the session stays where it was.
  try {
    await session.run(`echo count=999 > ${STATE}; echo "disk on fire" >&2; exit 3`, { check: true });
  } catch (e) {
    if (!isCommandFailed(e)) throw e;
    console.log(`failed step: exit ${e.exitCode}, stderr ${JSON.stringify(e.stderr.trim())}`);
  }
  const now = await session.run(`cat ${STATE}`, { check: true });
  console.log(`after the failure the state is still ${now.stdout.trim()}`);

  console.log("history:");
  for (const step of session.history) {
    const what = step.command === null ? "(start)" : String(step.command).slice(0, 40);
    const outcome = step.result
      ? `exit ${step.result.exitCode}${step.result.changed ? "" : ", unchanged"}`
      : "";
    console.log(`  #${step.index} ${step.image.uuid.slice(0, 8)} ${what} ${outcome}`.trimEnd());
  }

  // Roll back to the step where the counter was 1, and go on from there.
  const one = session.history.find((s) => s.command === INCREMENT)!;
  session.checkout(one.index);
  const rolled = await session.run(`cat ${STATE}`, { check: true });
  console.log(`checkout #${one.index}: ${rolled.stdout.trim()}`);

  // Three independent futures of the same image, run in parallel.
  const forks = session.fork(3);
  const results = await Promise.all(
    forks.map((f, i) =>
      f.run(`${INCREMENT} > /dev/null; echo "fork ${i}: $(cat ${STATE})"`, { check: true }),
    ),
  );
  for (const r of results) console.log(r.stdout.trim());
  const mine = await session.run(`cat ${STATE}`, { check: true });
  console.log(`the session itself: ${mine.stdout.trim()} (forks do not move it)`);
}

main().catch((e: unknown) => {
  console.error("session example failed:", e);
  process.exit(1);
});
