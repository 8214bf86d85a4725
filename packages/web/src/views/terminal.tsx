import { useEffect, useRef, useState } from "preact/hooks";
import { apiBase } from "../api/client.js";
import { useConsole } from "../context.js";
import type { ViewProps } from "../routes.js";
import type { TermHandle, TermStatus } from "../terminal/term-session.js";
import "../terminal/terminal.css";

/**
 * `#/operations/<id>/terminal?spid=N`: the terminal of a run's main process (or of subprocess N)
 * started with `tty: true`. This file is in the main bundle; xterm.js and the channel come with
 * the `import()` below, only when a terminal is opened.
 */
export function TerminalView({ params, query }: ViewProps) {
  const { client } = useConsole();
  const id = params["id"] ?? "";
  const spidText = query.get("spid") ?? "1";
  const spid = /^\d{1,9}$/.test(spidText) && Number(spidText) >= 1 ? Number(spidText) : undefined;
  const host = useRef<HTMLDivElement>(null);
  const handle = useRef<TermHandle | undefined>(undefined);
  const [status, setStatus] = useState<TermStatus>({ phase: "checking", message: "Loading the terminal…" });

  useEffect(() => {
    const el = host.current;
    if (el === null || spid === undefined) return;
    let gone = false;
    import("../terminal/term-session.js").then(
      (m) => {
        if (gone) return;
        handle.current = m.openTerminal({
          client,
          apiBase: apiBase(),
          opId: id,
          spid,
          host: el,
          onStatus: setStatus,
        });
        handle.current.focus();
      },
      () => setStatus({ phase: "refused", message: "The terminal could not be loaded; reload the page." }),
    );
    return () => {
      gone = true;
      handle.current?.dispose();
      handle.current = undefined;
    };
  }, [client, id, spid]);

  const back = `#/operations/${encodeURIComponent(id)}`;
  if (spid === undefined)
    return (
      <section aria-labelledby="view-title">
        <h1 id="view-title">Terminal</h1>
        <p role="alert" class="error">
          spid must be a positive whole number.
        </p>
      </section>
    );
  return (
    <section aria-labelledby="view-title" class="term-view">
      <div class="term-head">
        <h1 id="view-title">
          Terminal{spid === 1 ? "" : ` of process ${spid}`} of run <span class="mono">{id}</span>
        </h1>
        <a href={back}>Back to the run</a>
      </div>
      <p
        role="status"
        class={`term-status small term-${status.phase}`}
        data-testid="term-status"
        data-phase={status.phase}
      >
        {status.message}
      </p>
      <div class="term-frame">
        <div class="term-host" ref={host} data-testid="terminal" />
      </div>
    </section>
  );
}
