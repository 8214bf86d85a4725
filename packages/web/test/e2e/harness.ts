/**
 * End-to-end harness of the web console: a real server in this process (the same graph as the
 * daemon, real SQLite, real runtimes), optionally busybox imported from the fixture registry, an
 * ordinary user token, and Debian's chromium driven by playwright-core. Any browser console error
 * or uncaught page error fails the test at `close()` unless the test declared it expected.
 */
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import type { Config } from "../../../server/src/config/config.js";
import { importBusybox } from "../../../server/test/harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../../../server/test/harness/in-process.js";
import type { RegistryHandle } from "../../../server/test/harness/registry.js";
import { tenant } from "../../../server/test/harness/tenant.js";

const here = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(here, "../../../..");
export const CHROMIUM = process.env["CONTREE_CHROMIUM"] ?? "/usr/bin/chromium";
/** Where screenshots go (gitignored); CI keeps the folder as an artefact. */
export const SCREENSHOT_DIR = join(REPO_ROOT, "test-artifacts", "screenshots");
const UI_INDEX = join(REPO_ROOT, "packages", "server", "dist", "ui", "index.html");
const WEB_SRC = join(REPO_ROOT, "packages", "web", "src");

export interface ConsoleEnv {
  /** The server's root URL, e.g. http://127.0.0.1:41234 */
  baseUrl: string;
  /** The console: `${baseUrl}<prefix>/ui/` */
  uiUrl: string;
  server: TestServer;
  adminToken: string;
  /** A non-admin token of project "default" (the project the admin token imports into). */
  userToken: string;
  /** busybox:latest when asked for with `{ busybox: true }`. */
  busybox?: string;
  registry?: RegistryHandle;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far. */
  errors: string[];
  /** Console errors matching this are expected (e.g. the 401 of a bad token's sign-in). */
  allowError(pattern: RegExp): void;
  /** Saves a PNG under test-artifacts/screenshots/<name>.png; returns its path. */
  screenshot(name: string): Promise<string>;
  /** Runs a shell command on an image as the admin; returns the finished operation document. */
  run(image: string, command: string): Promise<Record<string, unknown>>;
  /** Signs in through the deep link and waits for the shell. */
  signIn(token: string, route?: string): Promise<void>;
  /** Closes everything; throws if the browser logged an unexpected error. */
  close(): Promise<void>;
}

/** Fails when the console was not built after its last source change (scripts/test.sh builds). */
function assertUiBuilt(): void {
  let built: number;
  try {
    built = statSync(UI_INDEX).mtimeMs;
  } catch {
    throw new Error(`the console is not built (${UI_INDEX} missing): run \`npm run build\``);
  }
  const stack = [WEB_SRC];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (statSync(p).mtimeMs > built)
        throw new Error(`the console build is older than ${p}: run \`npm run build\``);
    }
  }
}

export async function startConsole(
  o: { busybox?: boolean; config?: Partial<Config> } = {},
): Promise<ConsoleEnv> {
  assertUiBuilt();
  const server = await startTestServer(o.config ?? {});
  const cleanups: (() => Promise<void>)[] = [() => server.close()];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    let busybox: string | undefined;
    let registry: RegistryHandle | undefined;
    if (o.busybox === true) {
      const b = await importBusybox(server);
      registry = b.registry;
      busybox = b.image;
      cleanups.push(() => b.registry.stop());
    }
    const user = await tenant(server, "default");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Tests run as root, where chromium's own sandbox cannot start.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    cleanups.push(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    const allowed: RegExp[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const baseUrl = server.url;
    const uiUrl = `${baseUrl}${server.config.pathPrefix}/ui/`;
    return {
      baseUrl,
      uiUrl,
      server,
      adminToken: server.token,
      userToken: user.token,
      ...(busybox === undefined ? {} : { busybox }),
      ...(registry === undefined ? {} : { registry }),
      browser,
      context,
      page,
      errors,
      allowError: (p) => allowed.push(p),
      async screenshot(name) {
        const path = join(SCREENSHOT_DIR, `${name}.png`);
        await page.screenshot({ path });
        return path;
      },
      async run(image, command) {
        const r = await server.api("/v1/instances", {
          method: "POST",
          json: { command, shell: true, image },
        });
        if (r.status !== 202) throw new Error(`run: ${r.status} ${await r.text()}`);
        return waitOperation(server, ((await r.json()) as { uuid: string }).uuid, 120_000);
      },
      async signIn(token, route = "/images") {
        await page.goto(`${uiUrl}#token=${encodeURIComponent(token)}&next=${encodeURIComponent(route)}`);
        await page.locator("header.top").waitFor();
      },
      async close() {
        await cleanup();
        const unexpected = errors.filter((e) => !allowed.some((p) => p.test(e)));
        if (unexpected.length > 0) throw new Error(`browser errors:\n${unexpected.join("\n")}`);
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
