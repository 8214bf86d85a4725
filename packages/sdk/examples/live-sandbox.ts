// A live sandbox: one long-lived instance; processes run inside it one after another and share its
// memory, /tmp and background daemons, as in E2B or Daytona. When done, commit() turns its
// filesystem into an image (which runs, branches and reads like any other), or kill() drops it.
//
//   CONTREE_URL=http://127.0.0.1:8080 CONTREE_TOKEN=... npx tsx packages/sdk/examples/live-sandbox.ts
//
// In this repository `@contree/sdk` resolves to packages/sdk/src (the `paths` of the tsconfig); in
// your own project, after `npm i @contree/sdk tsx` (or the packed tarball), `npx tsx live-sandbox.ts`.

import { ContreeClient, isNotFound } from "@contree/sdk";

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
  const ref = process.env["CONTREE_IMAGE"] || "busybox";
  const image = await client.images.get(ref).catch(async (e: unknown) => {
    if (!isNotFound(e)) throw e;
    console.log(`${ref} not found; importing it`);
    return (await client.images.import(ref, { tag: `${ref}:latest` })).wait();
  });

  // It lives at most timeoutSec (default 300 s); commit() or kill() ends it sooner.
  const sandbox = await client.sandbox(image, { timeoutSec: 120, env: { APP_MODE: "demo" } });
  console.log(`sandbox ${sandbox.id} is ${sandbox.state}`);
  try {
    // A daemon whose state lives only in its memory (the shell variable n).
    const daemon = await sandbox.spawn([
      "sh",
      "-c",
      "n=0; while true; do n=$((n + 1)); echo $n > /tmp/ticks; sleep 0.05; done",
    ]);
    await sandbox.exec("while [ ! -s /tmp/ticks ]; do sleep 0.05; done", { check: true });
    const first = Number((await sandbox.read("/tmp/ticks", { as: "text" })).trim());
    await sandbox.exec("sleep 0.3");
    const later = Number((await sandbox.read("/tmp/ticks", { as: "text" })).trim());
    console.log(`daemon still counting between execs: ${later > first ? "yes" : "no"}`);

    // Files in and out, and a process with its own cwd, env and stdin; output streams to callbacks.
    await sandbox.write("/srv/greet.sh", 'echo "$GREETING from $(pwd) in $APP_MODE mode"; cat\n', {
      mode: 0o755,
    });
    const greeted = await sandbox.exec("/srv/greet.sh", {
      cwd: "/srv",
      env: { GREETING: "hello" },
      stdin: "stdin reached the process\n",
      check: true,
      onStdout: printLines("  | "),
    });
    console.log(`exec exit code ${greeted.exitCode}`);

    await daemon.kill();
    const image = await sandbox.commit(); // stops what still runs, snapshots the filesystem
    console.log(`committed: ${image.uuid} (sandbox is ${sandbox.state})`);

    // The committed image is an ordinary image: read it without a sandbox, or run from it.
    console.log(`image has /srv/greet.sh: ${await image.exists("/srv/greet.sh")}`);
    const again = await image.runAndWait("/srv/greet.sh < /dev/null", {
      env: { GREETING: "hello again", APP_MODE: "committed" },
      check: true,
    });
    console.log(`run from the image: ${again.stdout.trim()}`);
  } finally {
    if (sandbox.state === "running") await sandbox.kill();
  }
}

main().catch((e: unknown) => {
  console.error("live-sandbox example failed:", e);
  process.exit(1);
});
