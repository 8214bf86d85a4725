/**
 * What xterm.js gets instead of a `<style>` element (the build rewrites its `createElement("style")`
 * calls, see vite-xterm-csp.ts): an inert element whose `textContent` goes into a constructed
 * stylesheet adopted by the document. The CSP (`style-src 'self'`) refuses inline `<style>` text
 * but not constructed sheets, so the terminal is styled without weakening the page's policy.
 */

interface Owned {
  element: Element;
  sheet: CSSStyleSheet;
  doc: Document;
}

const owned = new Set<Owned>();

function drop(o: Owned): void {
  owned.delete(o);
  o.doc.adoptedStyleSheets = o.doc.adoptedStyleSheets.filter((s) => s !== o.sheet);
}

export function cspStyleElement(doc: Document): HTMLElement {
  // A <template> renders nothing and runs nothing wherever xterm appends it.
  const element = doc.createElement("template");
  const sheet = new CSSStyleSheet();
  const o: Owned = { element, sheet, doc };
  let text = "";
  owned.add(o);
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  Object.defineProperty(element, "textContent", {
    get: () => text,
    set: (v: unknown) => {
      text = typeof v === "string" ? v : "";
      sheet.replaceSync(text);
    },
  });
  const remove = element.remove.bind(element);
  element.remove = () => {
    remove();
    drop(o);
  };
  return element;
}

/** Drops the sheets of elements no longer in their document (xterm removes some with their parent). */
export function pruneCspStyles(): void {
  for (const o of [...owned]) if (!o.element.isConnected) drop(o);
}
