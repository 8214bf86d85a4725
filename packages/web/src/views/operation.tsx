import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Operation } from "../api/types.js";
import { followOperation, type OpEvent, type StreamState } from "../components/ops-events.js";
import { errorText, formatSeconds, formatTime, isActive } from "../components/ops-format.js";
import { ImportProgressBar, importProgress, NO_PROGRESS } from "../components/ops-import-progress.js";
import { OutputPane, type OutputSink } from "../components/ops-output-pane.js";
import { type ExitFigures, exitFigures, ResourceChart } from "../components/ops-resource-chart.js";
import { StatusBadge } from "../components/ops-status.js";
import { TIMELINE_CAP, Timeline } from "../components/ops-timeline.js";
import { useConsole } from "../context.js";
import type { ViewProps } from "../routes.js";
import "../components/ops.css";

const STREAM_WORDS: Record<StreamState, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  done: "complete",
};

/** While the stream is live the status is re-read now and then (PENDING → EXECUTING has no event). */
const STATUS_POLL_MS = 2000;

export function OperationView({ params }: ViewProps) {
  const { client } = useConsole();
  const id = params["id"] ?? "";
  const [op, setOp] = useState<Operation | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [stream, setStream] = useState<StreamState>("connecting");
  const [timeline, setTimeline] = useState<OpEvent[]>([]);
  const [figures, setFigures] = useState<ExitFigures | undefined>();
  const [completion, setCompletion] = useState<OpEvent | undefined>();
  const [progress, setProgress] = useState(NO_PROGRESS);
  const sink = useRef<OutputSink | undefined>(undefined);
  const early = useRef<{ stream: "stdout" | "stderr"; repr: unknown }[]>([]);

  const load = useCallback(async () => {
    try {
      setOp(await client.json<Operation>(`/operations/${encodeURIComponent(id)}`));
    } catch (e) {
      setError(errorText(e));
    }
  }, [client, id]);

  const onReady = useCallback((s: OutputSink | undefined) => {
    sink.current = s;
    if (s !== undefined) for (const c of early.current.splice(0)) s.append(c.stream, c.repr);
  }, []);

  useEffect(() => {
    void load();
    const ac = new AbortController();
    setTimeline([]);
    setFigures(undefined);
    setCompletion(undefined);
    setProgress(NO_PROGRESS);
    void followOperation(client, id, {
      signal: ac.signal,
      onState: setStream,
      onFatal: setError,
      onEvent: (e) => {
        if (e.type === "stdout" || e.type === "stderr") {
          if (sink.current === undefined) early.current.push({ stream: e.type, repr: e.data });
          else sink.current.append(e.type, e.data);
          return;
        }
        setTimeline((t) => (t.length >= TIMELINE_CAP ? [...t.slice(1), e] : [...t, e]));
        setProgress((p) => importProgress(p, e));
        if (e.type === "exit" && e.spid <= 1) setFigures(exitFigures(e.data));
        if (e.type === "completion") {
          setCompletion(e);
          void load();
        }
      },
    });
    return () => ac.abort();
  }, [client, id, load]);

  const status = completion === undefined ? op?.status : String(completion.data["status"] ?? op?.status);
  const live = status !== undefined && isActive(status);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => void load(), STATUS_POLL_MS);
    return () => clearInterval(t);
  }, [live, load]);

  const resultImage = op?.result_image_uuid ?? (completion?.data["result_image_uuid"] as string | undefined);
  const command = op === undefined ? undefined : commandOf(op);
  return (
    <section aria-labelledby="view-title">
      <div class="ops-head">
        <h1 id="view-title">
          {op?.kind === "image_import" ? "Import" : "Run"} <span class="mono">{id}</span>
        </h1>
        {status !== undefined && <StatusBadge status={status} testId="op-status" />}
        <span class="small muted" data-testid="stream-state">
          events: {STREAM_WORDS[stream]}
        </span>
        {live && op?.metadata["tty"] === true && (
          <a href={`#/operations/${encodeURIComponent(id)}/terminal`}>Terminal</a>
        )}
        {live && <CancelButton id={id} onDone={load} />}
      </div>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {op !== undefined && (
        <dl class="meta small">
          {command !== undefined && (
            <>
              <dt>command</dt>
              <dd class="mono">{command}</dd>
            </>
          )}
          <dt>created</dt>
          <dd>{formatTime(op.created_at)}</dd>
          <dt>duration</dt>
          <dd>{formatSeconds(op.duration)}</dd>
          {op.image_uuid !== null && (
            <>
              <dt>image</dt>
              <dd>
                <a href={`#/images/${op.image_uuid}`} class="mono">
                  {op.image_uuid}
                </a>
              </dd>
            </>
          )}
          {op.error !== null && (
            <>
              <dt>error</dt>
              <dd class="error">{op.error}</dd>
            </>
          )}
        </dl>
      )}
      {resultImage !== undefined && resultImage !== null && (
        <p>
          Result image:{" "}
          <a href={`#/images/${resultImage}`} class="mono" data-testid="result-image">
            {resultImage}
          </a>
        </p>
      )}
      <div class="ops-grid">
        <div>
          {op?.kind === "image_import" ? (
            <ImportProgressBar
              p={completion === undefined ? progress : { ...progress, ...statusOf(completion) }}
            />
          ) : (
            <>
              <h2>Output</h2>
              <OutputPane key={id} onReady={onReady} />
            </>
          )}
        </div>
        <div>
          <h2>Resources</h2>
          {figures === undefined ? (
            <p class="muted small">
              {live
                ? "Shown when the process exits."
                : op === undefined
                  ? "…"
                  : "No figures for this operation."}
            </p>
          ) : (
            <ResourceChart f={figures} />
          )}
          <h2>Events</h2>
          <Timeline events={timeline} />
        </div>
      </div>
    </section>
  );
}

function statusOf(c: OpEvent): { status?: string } {
  const s = c.data["status"];
  return typeof s === "string" ? { status: s } : {};
}

function commandOf(op: Operation): string | undefined {
  const m = op.metadata;
  if (typeof m["command"] !== "string") {
    const reg = m["registry"];
    if (reg !== null && typeof reg === "object" && typeof (reg as { url?: unknown }).url === "string")
      return (reg as { url: string }).url;
    return undefined;
  }
  const args = Array.isArray(m["args"]) ? m["args"].filter((a): a is string => typeof a === "string") : [];
  return [m["shell"] === true ? "sh -c" : "", m["command"], ...args].filter((x) => x !== "").join(" ");
}

function CancelButton({ id, onDone }: { id: string; onDone(): Promise<void> }) {
  const { client } = useConsole();
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | undefined>();
  const cancel = async () => {
    setBusy(true);
    try {
      await client.fetch(`/operations/${encodeURIComponent(id)}`, { method: "DELETE" });
      setMessage("Cancel requested.");
      await onDone();
    } catch (e) {
      setMessage(errorText(e));
    } finally {
      setBusy(false);
      setAsking(false);
    }
  };
  if (!asking)
    return (
      <span class="ops-confirm">
        <button type="button" class="secondary" onClick={() => setAsking(true)}>
          Cancel…
        </button>
        {message !== undefined && <span class="small muted">{message}</span>}
      </span>
    );
  return (
    <fieldset class="ops-confirm">
      <legend class="visually-hidden">Confirm cancel</legend>
      <span>Cancel this operation?</span>
      <button type="button" class="danger" disabled={busy} onClick={cancel}>
        Yes, cancel it
      </button>
      <button type="button" class="secondary" disabled={busy} onClick={() => setAsking(false)}>
        Keep it running
      </button>
    </fieldset>
  );
}
