/**
 * The live output pane: a scrollable log that follows the tail while the reader is at the
 * bottom and stops following when they scroll up (a button jumps back). The lines are written
 * by OutputBuffer straight into the DOM (text nodes in spans), outside Preact's tree.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { OUTPUT_LINE_CAP, OutputBuffer, type StreamName } from "./ops-output.js";

export interface OutputSink {
  append(stream: StreamName, repr: unknown): void;
}

/** How close to the bottom (px) still counts as "at the tail". */
const TAIL_SLACK = 8;

export function OutputPane({ onReady }: { onReady(sink: OutputSink | undefined): void }) {
  const box = useRef<HTMLDivElement>(null);
  const following = useRef(true);
  const [atTail, setAtTail] = useState(true);
  const [dropped, setDropped] = useState(0);
  const [empty, setEmpty] = useState(true);

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    el.replaceChildren();
    const buf = new OutputBuffer(el, OUTPUT_LINE_CAP);
    let frame = 0;
    const settle = () => {
      frame = 0;
      setDropped(buf.dropped);
      setEmpty(buf.bytes.stdout + buf.bytes.stderr === 0);
      if (following.current) el.scrollTop = el.scrollHeight;
    };
    onReady({
      append(stream, repr) {
        buf.append(stream, repr);
        if (frame === 0) frame = requestAnimationFrame(settle);
      },
    });
    return () => {
      onReady(undefined);
      if (frame !== 0) cancelAnimationFrame(frame);
    };
  }, [onReady]);

  const onScroll = () => {
    const el = box.current;
    if (el === null) return;
    const at = el.scrollHeight - el.scrollTop - el.clientHeight <= TAIL_SLACK;
    following.current = at;
    setAtTail(at);
  };
  const jump = () => {
    const el = box.current;
    if (el === null) return;
    following.current = true;
    setAtTail(true);
    el.scrollTop = el.scrollHeight;
  };

  return (
    <div class="ops-output-wrap">
      {dropped > 0 && (
        <p class="small muted" data-testid="output-dropped">
          The first {dropped.toLocaleString()} lines are not shown: this view keeps the last{" "}
          {OUTPUT_LINE_CAP.toLocaleString()} lines.
        </p>
      )}
      <div
        ref={box}
        class="ops-output"
        role="log"
        aria-live="off"
        aria-label="Output (stdout and stderr; stderr in red)"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling log takes focus so the keyboard can scroll it
        tabIndex={0}
        onScroll={onScroll}
        data-testid="output"
      />
      {empty && <p class="small muted">No output yet.</p>}
      {!atTail && (
        <button type="button" class="ops-jump secondary" onClick={jump}>
          Follow the tail ↓
        </button>
      )}
    </div>
  );
}
