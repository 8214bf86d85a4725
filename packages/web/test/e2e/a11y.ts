import type { Page } from "playwright-core";

/**
 * A small accessibility audit run in the page (a string: the test build has no DOM types):
 * every form control has an accessible name (label, aria-label or aria-labelledby), every
 * visible text meets WCAG AA contrast (4.5:1; 3:1 from 18.66px bold / 24px) against the first
 * opaque background up its ancestors, and every button has a name.
 */
const AUDIT = `(() => {
  const problems = [];
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const nameOf = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(" ").map((id) => document.getElementById(id)?.textContent ?? "").join(" ").trim();
    if (el.labels && el.labels.length > 0) return [...el.labels].map((l) => l.textContent).join(" ").trim();
    return (el.textContent ?? "").trim();
  };
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    const name = el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || (el.labels && el.labels.length);
    if (!name) problems.push("unlabelled " + el.tagName.toLowerCase() + "#" + el.id);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !nameOf(el)) problems.push("nameless " + el.tagName.toLowerCase());
  }
  const rgb = (c) => { const m = c.match(/[\\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
    if ((c[3] ?? 1) > 0.5) return c; } return [255, 255, 255, 1]; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || n.textContent.trim() === "" || !visible(el)) continue;
    seen.add(el);
    const s = getComputedStyle(el);
    if (s.opacity !== "" && Number(s.opacity) < 1) continue;
    if (el.closest("button:disabled")) continue;
    const fg = rgb(s.color); const bg = bgOf(el);
    const a = lum(fg) + 0.05; const b = lum(bg) + 0.05;
    const ratio = Math.max(a, b) / Math.min(a, b);
    const px = parseFloat(s.fontSize); const bold = Number(s.fontWeight) >= 700;
    const need = px >= 24 || (bold && px >= 18.66) ? 3 : 4.5;
    if (ratio < need) problems.push("contrast " + ratio.toFixed(2) + " < " + need + ": " + JSON.stringify(n.textContent.trim().slice(0, 40)));
  }
  return problems;
})()`;

export async function audit(page: Page): Promise<string[]> {
  return (await page.evaluate(AUDIT)) as string[];
}
