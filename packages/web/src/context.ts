import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { ApiClient } from "./api/client.js";
import type { Whoami } from "./api/types.js";

/** What every view gets from the shell: the signed-in client and who it is. */
export interface Console {
  client: ApiClient;
  whoami: Whoami;
}

export const ConsoleContext = createContext<Console | undefined>(undefined);

export function useConsole(): Console {
  const c = useContext(ConsoleContext);
  if (c === undefined) throw new Error("useConsole outside the signed-in shell");
  return c;
}
