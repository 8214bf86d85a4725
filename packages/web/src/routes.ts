import type { FunctionComponent } from "preact";
import { AdminView } from "./views/admin.js";
import { ImageView } from "./views/image.js";
import { ImagesView } from "./views/images.js";
import { ImportView } from "./views/import.js";
import { OperationView } from "./views/operation.js";
import { OperationsView } from "./views/operations.js";
import { RunView } from "./views/run.js";
import { TerminalView } from "./views/terminal.js";

/** A view gets the route's params (`:uuid` → `params.uuid`) and the fragment's query. */
export interface ViewProps {
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface Route {
  pattern: string;
  view: FunctionComponent<ViewProps>;
  /** Shown in the nav when set. */
  nav?: string;
}

/** The route table: one line per view (each view in its own file under views/). */
export const ROUTES: readonly Route[] = [
  { pattern: "/images", view: ImagesView, nav: "Images" },
  { pattern: "/images/:uuid", view: ImageView },
  { pattern: "/operations", view: OperationsView, nav: "Operations" },
  { pattern: "/operations/:id", view: OperationView },
  { pattern: "/run", view: RunView, nav: "Run" },
  { pattern: "/import", view: ImportView, nav: "Import" },
  { pattern: "/admin", view: AdminView, nav: "Admin" },
  { pattern: "/operations/:id/terminal", view: TerminalView },
];
