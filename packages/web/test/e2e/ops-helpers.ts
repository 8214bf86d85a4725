/** Helpers of the operations e2e tests: the API as the signed-in user, and reading the output pane. */
import type { Locator, Page } from "playwright-core";
import type { ConsoleEnv } from "./harness.js";

export const ACTIVE = ["PENDING", "ASSIGNED", "EXECUTING"];

/** The API with the test's user token (what the console itself holds). */
export async function userApi(env: ConsoleEnv, path: string, init: { method?: string; json?: unknown } = {}) {
  const headers = new Headers({ authorization: `Bearer ${env.userToken}` });
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return fetch(`${env.baseUrl}/v1${path}`, {
    method: init.method ?? "GET",
    headers,
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
}

export async function spawn(env: ConsoleEnv, body: Record<string, unknown>): Promise<string> {
  const r = await userApi(env, "/instances", {
    method: "POST",
    json: { image: "tag:busybox:latest", shell: true, ...body },
  });
  const j = (await r.json()) as { uuid?: string; error?: string };
  if (r.status !== 202 || j.uuid === undefined) throw new Error(`spawn: ${r.status} ${j.error}`);
  return j.uuid;
}

export async function statusOf(env: ConsoleEnv, id: string): Promise<string> {
  const r = await userApi(env, `/operations/${id}`);
  return ((await r.json()) as { status: string }).status;
}

/** The output pane's lines as the reader sees them (one string per line, empty ones dropped). */
export async function outputLines(page: Page): Promise<string[]> {
  const lines = await page.locator('[data-testid="output"] .ol').allTextContents();
  return lines.filter((l) => l !== "");
}

/**
 * Waits until the operation page shows `status` and its event stream has ended with the
 * completion event (the status can arrive first, from the page's status poll).
 */
export async function waitStatus(page: Page, status: string): Promise<void> {
  await page.locator(`[data-testid="op-status"]`, { hasText: status }).waitFor();
  await page.locator(`[data-testid="stream-state"]`, { hasText: "complete" }).waitFor();
}

/** The events replayed so far (no follow), raw SSE text. */
export async function replayText(env: ConsoleEnv, id: string): Promise<string> {
  return (await userApi(env, `/operations/${id}/events`)).text();
}

/** The computed text colour of an element (through the element's window: the tests compile without the DOM lib's globals). */
export async function colourOf(l: Locator): Promise<string> {
  return String(await l.evaluate((el) => el.ownerDocument.defaultView?.getComputedStyle(el).color));
}

/**
 * A shell command printing `tick 1`…`tick n`, four a second, that stops after `tick gateAt`
 * until the test opens the gate (`openGate`): the run cannot finish before the test has looked.
 */
export function gatedTicks(n: number, gateAt: number): string {
  return (
    `for i in $(seq 1 ${gateAt}); do echo "tick $i"; sleep 0.25; done; ` +
    "while [ ! -e /tmp/gate ]; do sleep 0.05; done; " +
    `for i in $(seq ${gateAt + 1} ${n}); do echo "tick $i"; sleep 0.25; done`
  );
}

/** Opens the gate of a `gatedTicks` run (a subprocess in the running sandbox). */
export async function openGate(env: ConsoleEnv, id: string): Promise<void> {
  const r = await userApi(env, `/operations/${id}/subprocesses`, {
    method: "POST",
    json: { command: "touch /tmp/gate", shell: true },
  });
  if (!r.ok) throw new Error(`open gate: ${r.status} ${await r.text()}`);
}

export const tickLines = (n: number) => Array.from({ length: n }, (_, i) => `tick ${i + 1}`);
