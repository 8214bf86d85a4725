import { fileURLToPath } from "node:url";
import type { Plugin } from "vite";

/**
 * xterm.js 6.0.0 styles its DOM renderer with `<style>` elements filled through `textContent` and
 * with `setAttribute("style", …)` on cells of 256/true colours. The console's CSP (`style-src
 * 'self'`, no 'unsafe-inline') refuses both, and loosening it would weaken the page that shows
 * sandbox file contents. This build step rewrites those three `createElement("style")` calls to
 * `cspStyleElement(doc)` (src/terminal/csp-style.ts: the same CSS, in a constructed stylesheet
 * adopted by the document, which the CSP allows) and the attribute write to a CSSOM `cssText`
 * write. The patterns are those of the pinned version: a bump that changes them fails the build
 * here rather than at run time with CSP errors.
 */
const STYLE_ELEMENT = /\b([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.createElement\("style"\)/g;
const STYLE_ELEMENTS = 3;
// biome-ignore lint/suspicious/noTemplateCurlyInString: xterm's source text, matched as is
const ADD_STYLE = '_addStyle(t,e){t.setAttribute("style",`${t.getAttribute("style")||""}${e};`)}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: source text put into xterm's module
const ADD_STYLE_CSSOM = "_addStyle(t,e){t.style.cssText+=`${e};`}";
const HELPER = fileURLToPath(new URL("./src/terminal/csp-style.ts", import.meta.url));

export function xtermCsp(): Plugin {
  return {
    name: "contree-xterm-csp",
    enforce: "pre",
    transform(code, id) {
      if (!/[\\/]@xterm[\\/]xterm[\\/]lib[\\/]xterm\.mjs$/.test(id)) return null;
      const found = code.match(STYLE_ELEMENT)?.length ?? 0;
      if (found !== STYLE_ELEMENTS || !code.includes(ADD_STYLE))
        throw new Error(
          `xterm-csp: @xterm/xterm changed (${found} style elements, _addStyle ${code.includes(ADD_STYLE) ? "found" : "missing"}): update vite-xterm-csp.ts`,
        );
      const patched = code
        .replace(STYLE_ELEMENT, (_m, doc: string) => `__contreeCspStyle(${doc})`)
        .replace(ADD_STYLE, ADD_STYLE_CSSOM);
      return {
        code: `import { cspStyleElement as __contreeCspStyle } from ${JSON.stringify(HELPER)};\n${patched}`,
        map: null,
      };
    },
  };
}
