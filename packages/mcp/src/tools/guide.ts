import { z } from "zod";
import { GUIDE } from "../guide-text.js";
import { ok, type ToolContext } from "../tool-kit.js";

export function registerGuideTool(ctx: ToolContext): void {
  const sections = Object.keys(GUIDE).sort();
  ctx.server.registerTool(
    "contree_get_guide",
    {
      description: `A section of the usage guide (free). Sections: ${sections.join(", ")}. Also readable as resources contree://guide/{section}.`,
      inputSchema: { section: z.string().max(64) },
    },
    async (a) => {
      const content = GUIDE[a.section];
      if (content === undefined)
        throw new Error(`unknown guide section '${a.section}'. Available sections: ${sections.join(", ")}`);
      return ok({ section: a.section, content, available_sections: sections });
    },
  );
}
