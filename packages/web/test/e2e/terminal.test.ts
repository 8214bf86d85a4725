import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_IMAGES } from "../../../server/test/harness/fixtures.js";
import { tenant } from "../../../server/test/harness/tenant.js";
import { type ConsoleEnv, startConsole } from "./harness.js";
import { ACTIVE, colourOf, spawn, statusOf, userApi } from "./ops-helpers.js";

/** The terminal's rows as drawn by xterm's DOM renderer, one string per row (non-breaking spaces as spaces). */
async function termRows(page: Page): Promise<string[]> {
  const rows = await page.locator('[data-testid="terminal"] .xterm-rows > div').allTextContents();
  return rows.map((r) => r.replace(/\u00a0/g, " ").trimEnd());
}

/** Waits until some drawn row contains `text`. */
async function seeInTerminal(page: Page, text: string): Promise<void> {
  await page.locator('[data-testid="terminal"] .xterm-rows > div', { hasText: text }).first().waitFor();
}

async function waitPhase(page: Page, phase: string): Promise<string> {
  const s = page.locator(`[data-testid="term-status"][data-phase="${phase}"]`);
  await s.waitFor();
  return (await s.textContent()) ?? "";
}

/** Types a line into the focused terminal, as a person would (xterm turns keys into bytes). */
async function typeLine(page: Page, line: string): Promise<void> {
  await page.locator('[data-testid="terminal"] .xterm-helper-textarea').focus();
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

async function cancel(env: ConsoleEnv, id: string): Promise<void> {
  await userApi(env, `/operations/${id}`, { method: "DELETE" });
}

describe("web console: the xterm.js terminal view (chromium against a real server)", () => {
  let env: ConsoleEnv;
  const requested: string[] = [];
  beforeAll(async () => {
    env = await startConsole({ busybox: true });
    await env.signIn(env.userToken, "/run");
    // From here on every URL the page asks for, sockets included, is kept: none may hold the token.
    env.page.on("request", (r) => requested.push(r.url()));
    env.page.on("websocket", (ws) => requested.push(ws.url()));
  });
  afterAll(async () => {
    await env?.close();
  });

  it("starts sh with a terminal from the Run form: types, resizes, ^C interrupts, exit 3 is shown", async () => {
    const { page } = env;
    await page.getByRole("heading", { name: "Run" }).waitFor();
    await page.getByLabel("Image (uuid or tag)").fill("busybox:latest");
    await page.getByLabel("Command", { exact: true }).fill("sh");
    await page.getByLabel("Timeout (seconds)").fill("300");
    await page.getByLabel(/Terminal \(tty\)/).check();
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForURL(/#\/operations\/[0-9a-f-]{36}\/terminal$/);
    const id = new URL(page.url()).hash.split("/")[2]!;
    await waitPhase(page, "live");
    expect(ACTIVE).toContain(await statusOf(env, id));
    const op = (await (await userApi(env, `/operations/${id}`)).json()) as {
      metadata: Record<string, unknown>;
    };
    expect(op.metadata["tty"]).toBe(true);

    await typeLine(page, "echo hi-$((6*7))");
    await seeInTerminal(page, "hi-42");
    // A true colour: xterm's DOM renderer styles that cell itself, which must pass the CSP too.
    await typeLine(page, String.raw`printf '\033[38;2;255;135;0mhot-%s\033[0m\n' $((4*4))`);
    const hot = page.locator('[data-testid="terminal"] .xterm-rows span', { hasText: /^hot-16$/ });
    await hot.waitFor();
    expect(await colourOf(hot)).toBe("rgb(255, 135, 0)");
    // The process's own terminal is as large as the view: the fit was sent as a resize.
    const size = async () => (await page.getByTestId("terminal").getAttribute("data-size")) ?? "";
    const [rows, cols] = (await size()).split("x");
    expect(Number(cols)).toBeGreaterThan(80);
    await typeLine(page, "stty size");
    await seeInTerminal(page, `${rows} ${cols}`);
    await page.setViewportSize({ width: 900, height: 640 });
    await page.locator(`[data-testid="terminal"]:not([data-size="${rows}x${cols}"])`).waitFor();
    const [rows2, cols2] = (await size()).split("x");
    expect(Number(cols2)).toBeLessThan(Number(cols));
    await typeLine(page, "stty size");
    await seeInTerminal(page, `${rows2} ${cols2}`);
    await page.setViewportSize({ width: 1280, height: 800 });

    // ^C interrupts the foreground job, and the shell takes commands again.
    await typeLine(page, "sh -c 'echo started-$((5*5)); exec sleep 100'");
    await seeInTerminal(page, "started-25");
    await page.keyboard.press("Control+c");
    await seeInTerminal(page, "^C");
    await typeLine(page, "echo back-$((6*7+1))");
    await seeInTerminal(page, "back-43");
    // The prompt came back on the line after ^C, and the typed line was echoed by the terminal.
    const after = (await termRows(page)).join("\n");
    expect(after).toMatch(/\^C\n[^\n]*# echo back-\$\(\(6\*7\+1\)\)\nback-43/);
    expect(ACTIVE).toContain(await statusOf(env, id));
    await env.screenshot("terminal");

    await typeLine(page, "exit 3");
    expect(await waitPhase(page, "ended")).toContain("exited with code 3");
    await seeInTerminal(page, "exited with code 3");
  });

  it("the operation page links to a live terminal; a run's subprocess terminal opens with ?spid=", async () => {
    const { page } = env;
    const id = await spawn(env, { command: "sh", tty: true, rows: 24, cols: 80, timeout: 300 });
    await page.goto(`${env.uiUrl}#/operations/${id}`);
    await page.getByRole("link", { name: "Terminal", exact: true }).click();
    await page.waitForURL(new RegExp(`#/operations/${id}/terminal$`));
    await waitPhase(page, "live");
    await typeLine(page, "echo linked-$((2+3))");
    await seeInTerminal(page, "linked-5");

    // A second process of the same instance, with its own terminal.
    const r = await userApi(env, `/operations/${id}/subprocesses`, {
      method: "POST",
      json: { command: "sh", shell: false, tty: true },
    });
    expect(r.status).toBe(201);
    const { spid } = (await r.json()) as { spid: number };
    await page.goto(`${env.uiUrl}#/operations/${id}/terminal?spid=${spid}`);
    await page.getByRole("heading", { name: new RegExp(`of process ${spid}`) }).waitFor();
    await waitPhase(page, "live");
    await typeLine(page, "echo sub-$((3*3))");
    await seeInTerminal(page, "sub-9");
    await typeLine(page, "exit 5");
    expect(await waitPhase(page, "ended")).toContain("exited with code 5");
    // Reopened, the ended process is explained without a socket.
    await page.reload();
    expect(await waitPhase(page, "ended")).toContain("exited with code 5");
    await cancel(env, id);
  });

  it("explains, without opening a socket, a run with no terminal, a finished run and an unknown one", async () => {
    const { page } = env;
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    const plain = await spawn(env, { command: "sleep 120", timeout: 300 });
    await page.goto(`${env.uiUrl}#/operations/${plain}/terminal`);
    expect(await waitPhase(page, "refused")).toContain("started without a terminal");
    await cancel(env, plain);
    const finished = await env.run(env.busybox!, "true");
    await page.goto(`${env.uiUrl}#/operations/${String(finished["uuid"])}/terminal`);
    expect(await waitPhase(page, "ended")).toContain("has finished");
    env.allowError(/status of 404/);
    await page.goto(`${env.uiUrl}#/operations/00000000-0000-4000-8000-000000000000/terminal`);
    expect(await waitPhase(page, "refused")).toMatch(/Not found/);
    expect(sockets).toEqual([]);
  });

  it("an admin who switched project reaches that project's terminals (the project rides as a subprotocol)", async () => {
    const { page } = env;
    const team = await tenant(env.server, "term-team");
    const done = async (r: Response) => {
      const { uuid } = (await r.json()) as { uuid: string };
      for (;;) {
        const op = (await (await team.api(`/v1/operations/${uuid}`)).json()) as { status: string };
        if (!ACTIVE.includes(op.status)) return op.status;
        await new Promise((ok) => setTimeout(ok, 200));
      }
    };
    const url = `docker://${env.registry!.host}/${FIXTURE_IMAGES.busybox}`;
    const imported = await team.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url }, tag: "busybox:latest" },
    });
    expect(await done(imported)).toBe("SUCCESS");
    const r = await team.api("/v1/instances", {
      method: "POST",
      json: { image: "tag:busybox:latest", command: "sh", tty: true, timeout: 300 },
    });
    const { uuid: id } = (await r.json()) as { uuid: string };
    const route = `/operations/${id}/terminal`;
    await page.goto(
      `${env.uiUrl}#token=${env.adminToken}&project=term-team&next=${encodeURIComponent(route)}`,
    );
    await waitPhase(page, "live");
    await typeLine(page, "echo team-$((10*10))");
    await seeInTerminal(page, "team-100");
    await typeLine(page, "exit");
    expect(await waitPhase(page, "ended")).toContain("exited with code 0");
    // Back to the user's own session for the tests after this one.
    await env.signIn(env.userToken, "/run");
  });

  it("no request, socket or not, carried the token in its URL", () => {
    expect(requested.some((u) => u.includes("/terminal"))).toBe(true);
    for (const token of [env.userToken, env.adminToken])
      expect(requested.filter((u) => u.includes(token) && !u.includes("#token="))).toEqual([]);
  });

  // Last: it stops the server.
  it("a server shutdown (close 1001) is said on the page, and the view keeps trying to reconnect", async () => {
    const { page } = env;
    const id = await spawn(env, { command: "sh", tty: true, timeout: 300 });
    await page.goto(`${env.uiUrl}#/operations/${id}/terminal`);
    await waitPhase(page, "live");
    // The retries' requests fail while the server is gone.
    env.allowError(/ERR_CONNECTION_REFUSED|Failed to fetch|WebSocket connection/);
    await env.server.close();
    await seeInTerminal(page, "The server is shutting down");
    // Retrying goes on (checking, attaching, waiting) while the server is leaving, then gone.
    expect(await waitPhase(page, "retrying")).toMatch(/shutting down|cannot be reached/);
  });
});
