import { useEffect, useRef, useState } from "preact/hooks";
import { boundsOf, type Placed } from "./layout.js";
import type { RunMarks } from "./model.js";

interface Props {
  placed: readonly Placed[];
  marks: ReadonlyMap<string, RunMarks>;
  /** Image to focus first (e.g. the one the user came from). */
  initialFocus?: string | undefined;
  /** Enter/click on a node: open an image, unfold a chain. */
  onActivate(p: Placed): void;
  /** Called once the first frame is drawn (the bench reads the time). */
  onDrawn?(): void;
}

interface View {
  k: number;
  tx: number;
  ty: number;
}

const R = 6;
const MIN_K = 0.01;
const MAX_K = 4;
const COLOURS = {
  edge: "#8c959f",
  root: "#0550ae",
  run: "#116329",
  chain: "#57606a",
  project: "#1b1f24",
  failed: "#cf222e",
  focus: "#bf5700",
  text: "#1b1f24",
  muted: "#57606a",
};

/** Words for the screen reader and the tooltip line under the canvas. */
export function describe(p: Placed, marks: ReadonlyMap<string, RunMarks>): string {
  const n = p.node;
  if (n.kind === "project")
    return `Project: ${p.children.length} root image(s). Right arrow enters the tree.`;
  if (n.kind === "chain") return `${n.images.length} images in a straight line, folded. Enter unfolds them.`;
  const m = marks.get(n.id);
  const parts = [`Image ${n.id.slice(0, 8)}`];
  if (n.image.tag !== null) parts.push(`tag ${n.image.tag}`);
  parts.push(`${p.children.length} child(ren)`);
  if (m !== undefined && m.failed > 0) parts.push(`${m.failed} failed run(s)`);
  if (m !== undefined && m.unchanged > 0) parts.push(`${m.unchanged} run(s) that changed nothing`);
  parts.push(`created ${n.image.created_at.slice(0, 19).replace("T", " ")}`);
  return `${parts.join(", ")}. Enter opens it.`;
}

/**
 * The lineage tree on one canvas: thousands of nodes cost one path per frame, not thousands of
 * DOM nodes. Wheel zooms at the pointer, drag pans, click or Enter activates; the arrow keys
 * walk the tree (left: parent, right: first child, up/down: siblings), +/- zoom, 0 fits, and
 * an aria-live line says where the focus is.
 */
export function TreeCanvas({ placed, marks, initialFocus, onActivate, onDrawn }: Props) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const view = useRef<View>({ k: 1, tx: 0, ty: 0 });
  const size = useRef({ w: 0, h: 0 });
  const frame = useRef(0);
  const drawnOnce = useRef(false);
  const start = Math.max(
    0,
    initialFocus === undefined ? 0 : placed.findIndex((p) => p.node.id === initialFocus),
  );
  const [focus, setFocus] = useState(start);
  const focusRef = useRef(focus);
  focusRef.current = focus;

  const draw = () => {
    frame.current = 0;
    const c = canvasRef.current;
    if (c === null) return;
    const started = performance.now();
    const ctx = c.getContext("2d");
    if (ctx === null) return;
    const dpr = window.devicePixelRatio || 1;
    const { w, h } = size.current;
    const { k, tx, ty } = view.current;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.setTransform(dpr * k, 0, 0, dpr * k, dpr * tx, dpr * ty);
    // The world rectangle on screen, with a margin for labels.
    const x0 = -tx / k - 200;
    const y0 = -ty / k - 40;
    const x1 = (w - tx) / k + 40;
    const y1 = (h - ty) / k + 40;
    const inView = (p: Placed) => p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1;

    ctx.beginPath();
    for (const p of placed) {
      if (p.parent < 0) continue;
      const q = placed[p.parent]!;
      if ((p.x < x0 && q.x < x0) || (p.x > x1 && q.x > x1)) continue;
      if ((p.y < y0 && q.y < y0) || (p.y > y1 && q.y > y1)) continue;
      const mid = (p.x + q.x) / 2;
      ctx.moveTo(q.x, q.y);
      ctx.lineTo(mid, q.y);
      ctx.lineTo(mid, p.y);
      ctx.lineTo(p.x, p.y);
    }
    ctx.lineWidth = 1 / Math.max(k, 0.5);
    ctx.strokeStyle = COLOURS.edge;
    ctx.stroke();

    const labels = k >= 0.45;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    for (let i = 0; i < placed.length; i++) {
      const p = placed[i]!;
      if (!inView(p)) continue;
      const n = p.node;
      if (n.kind === "chain") {
        ctx.fillStyle = "#ffffff";
        ctx.strokeStyle = COLOURS.chain;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.rect(p.x - 14, p.y - 7, 28, 14);
        ctx.fill();
        ctx.stroke();
        if (labels) {
          ctx.strokeStyle = "#ffffff";
          ctx.lineWidth = 3;
          ctx.strokeText(`… ${n.images.length} images`, p.x - 14, p.y - 9);
          ctx.fillStyle = COLOURS.muted;
          ctx.fillText(`… ${n.images.length} images`, p.x - 14, p.y - 9);
        }
      } else {
        const m = n.kind === "image" ? marks.get(n.id) : undefined;
        ctx.fillStyle =
          n.kind === "project"
            ? COLOURS.project
            : n.image.parent_uuid === null || p.parent === 0
              ? COLOURS.root
              : COLOURS.run;
        ctx.beginPath();
        ctx.arc(p.x, p.y, R, 0, Math.PI * 2);
        ctx.fill();
        if (m !== undefined && m.failed > 0) {
          ctx.strokeStyle = COLOURS.failed;
          ctx.lineWidth = 2.5;
          ctx.beginPath();
          ctx.arc(p.x, p.y, R + 3, 0, Math.PI * 2);
          ctx.stroke();
        }
        if (labels && n.kind === "image") {
          const bits: string[] = [];
          if (n.image.tag !== null) bits.push(n.image.tag);
          if (m !== undefined && m.failed > 0) bits.push(`✗${m.failed}`);
          if (m !== undefined && m.unchanged > 0) bits.push(`=${m.unchanged}`);
          if (k >= 1.2 && n.image.tag === null) bits.unshift(n.id.slice(0, 8));
          if (bits.length > 0) {
            // A white halo keeps the label readable over the edges it crosses.
            const label = bits.join(" ");
            ctx.strokeStyle = "#ffffff";
            ctx.lineWidth = 3;
            ctx.strokeText(label, p.x - R, p.y - R - 3);
            ctx.fillStyle = n.image.tag !== null ? COLOURS.text : COLOURS.muted;
            ctx.fillText(label, p.x - R, p.y - R - 3);
          }
        }
      }
      if (i === focusRef.current) {
        ctx.strokeStyle = COLOURS.focus;
        ctx.lineWidth = 3 / Math.max(k, 0.3);
        ctx.beginPath();
        ctx.arc(p.x, p.y, R + 6 / Math.min(k, 1), 0, Math.PI * 2);
        ctx.stroke();
      }
    }
    // Where the focused node is on screen: lets a test (or a magnifier) point at it.
    const f = placed[focusRef.current];
    if (f !== undefined) c.dataset["focusAt"] = `${Math.round(f.x * k + tx)},${Math.round(f.y * k + ty)}`;
    // The cost of this frame (the bench reads it while zooming).
    c.dataset["drawMs"] = (performance.now() - started).toFixed(2);
    if (!drawnOnce.current) {
      drawnOnce.current = true;
      onDrawn?.();
    }
  };
  const redraw = () => {
    if (frame.current === 0) frame.current = requestAnimationFrame(draw);
  };

  const fit = () => {
    const b = boundsOf(placed);
    const { w, h } = size.current;
    const pad = 40;
    const k = Math.min(
      MAX_K,
      Math.max(
        MIN_K,
        Math.min((w - 2 * pad) / (b.maxX - b.minX || 1), (h - 2 * pad) / (b.maxY - b.minY || 1)),
      ),
      1.5,
    );
    view.current = {
      k,
      tx: pad - b.minX * k + Math.max(0, (w - 2 * pad - (b.maxX - b.minX) * k) / 2),
      ty: h / 2 - ((b.minY + b.maxY) / 2) * k,
    };
    redraw();
  };

  const zoomAt = (factor: number, sx: number, sy: number) => {
    const v = view.current;
    const k = Math.min(MAX_K, Math.max(MIN_K, v.k * factor));
    view.current = { k, tx: sx - ((sx - v.tx) * k) / v.k, ty: sy - ((sy - v.ty) * k) / v.k };
    redraw();
  };

  /** Pans so the node is on screen (a margin from the edges). */
  const reveal = (i: number) => {
    const p = placed[i];
    if (p === undefined) return;
    const v = view.current;
    const { w, h } = size.current;
    const sx = p.x * v.k + v.tx;
    const sy = p.y * v.k + v.ty;
    if (sx < 60 || sx > w - 60 || sy < 40 || sy > h - 40)
      view.current = { ...v, tx: w / 2 - p.x * v.k, ty: h / 2 - p.y * v.k };
    redraw();
  };

  // Size the backing store to the element (and the device pixel ratio); fit on first sizing.
  useEffect(() => {
    const c = canvasRef.current;
    if (c === null) return;
    let fitted = false;
    const resize = () => {
      const r = c.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      size.current = { w: r.width, h: r.height };
      c.width = Math.max(1, Math.round(r.width * dpr));
      c.height = Math.max(1, Math.round(r.height * dpr));
      if (!fitted) {
        fitted = true;
        fit();
        if (initialFocus !== undefined && start > 0) reveal(start);
      }
      redraw();
    };
    resize();
    const ro = new ResizeObserver(resize);
    ro.observe(c);
    // Wheel must not scroll the page: a non-passive listener.
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    };
    c.addEventListener("wheel", onWheel, { passive: false });
    return () => {
      ro.disconnect();
      c.removeEventListener("wheel", onWheel);
      if (frame.current !== 0) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [placed]);

  useEffect(() => redraw(), [focus]);

  const drag = useRef<{ x: number; y: number; tx: number; ty: number; moved: boolean } | undefined>(
    undefined,
  );
  const onPointerDown = (e: PointerEvent) => {
    const v = view.current;
    drag.current = { x: e.clientX, y: e.clientY, tx: v.tx, ty: v.ty, moved: false };
    (e.currentTarget as HTMLCanvasElement).setPointerCapture(e.pointerId);
  };
  const onPointerMove = (e: PointerEvent) => {
    const d = drag.current;
    if (d === undefined) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) d.moved = true;
    if (d.moved) {
      view.current = { ...view.current, tx: d.tx + dx, ty: d.ty + dy };
      redraw();
    }
  };
  const onPointerUp = (e: PointerEvent) => {
    const d = drag.current;
    drag.current = undefined;
    if (d === undefined || d.moved) return;
    const c = canvasRef.current!;
    const r = c.getBoundingClientRect();
    const v = view.current;
    const wx = (e.clientX - r.left - v.tx) / v.k;
    const wy = (e.clientY - r.top - v.ty) / v.k;
    const reach = Math.max(R + 4, 8 / v.k);
    let best = -1;
    let bestD = reach * reach;
    for (let i = 0; i < placed.length; i++) {
      const p = placed[i]!;
      const dd = (p.x - wx) ** 2 + (p.y - wy) ** 2;
      if (dd <= bestD) {
        best = i;
        bestD = dd;
      }
    }
    if (best < 0) return;
    setFocus(best);
    onActivate(placed[best]!);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const p = placed[focus];
    if (p === undefined) return;
    let next = -1;
    const siblings = p.parent >= 0 ? placed[p.parent]!.children : [0];
    const at = siblings.indexOf(focus);
    switch (e.key) {
      case "ArrowLeft":
        next = p.parent;
        break;
      case "ArrowRight":
        next = p.children[0] ?? -1;
        break;
      case "ArrowUp":
        next = siblings[at - 1] ?? -1;
        break;
      case "ArrowDown":
        next = siblings[at + 1] ?? -1;
        break;
      case "Home":
        next = 0;
        break;
      case "Enter":
      case " ":
        e.preventDefault();
        onActivate(p);
        return;
      case "+":
      case "=":
        zoomAt(1.25, size.current.w / 2, size.current.h / 2);
        e.preventDefault();
        return;
      case "-":
        zoomAt(0.8, size.current.w / 2, size.current.h / 2);
        e.preventDefault();
        return;
      case "0":
        fit();
        e.preventDefault();
        return;
      default:
        return;
    }
    e.preventDefault();
    if (next >= 0) {
      setFocus(next);
      reveal(next);
    }
  };

  const here = placed[focus];
  return (
    <>
      <div class="tree-wrap">
        <canvas
          ref={canvasRef}
          tabIndex={0}
          aria-roledescription="image tree"
          aria-label={`Image tree, ${placed.length - 1} nodes. Arrow keys move, Enter opens, plus and minus zoom, 0 fits.`}
          aria-describedby="tree-focus"
          data-nodes={placed.length - 1}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onKeyDown={onKeyDown}
        />
      </div>
      <p id="tree-focus" class="tree-focus small" aria-live="polite" data-testid="tree-focus">
        {here === undefined ? "" : describe(here, marks)}
      </p>
    </>
  );
}
