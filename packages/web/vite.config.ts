import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { xtermCsp } from "./vite-xterm-csp.js";

/**
 * The console is built into the server package (`packages/server/dist/ui`), which serves it at
 * `/ui/`: one artefact to ship, nothing fetched at run time. JSX goes through Vite's own oxc
 * transform with Preact's automatic runtime, so no framework plugin is needed.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  plugins: [xtermCsp()],
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../server/dist/ui", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    assetsDir: "assets",
    // No inline scripts or data: URLs: the server's CSP is `default-src 'self'`.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
  },
});
