/** A file of a synced directory: where it goes in the sandbox, and which upload holds it. */
export interface StateFile {
  target: string;
  uuid: string;
  mode: number;
}

/**
 * The directory states `contree_rsync` returns (integer ids, as the official server's), kept
 * in memory for the life of the MCP server: a new process starts without any.
 */
export class DirectoryStates {
  private readonly states = new Map<number, StateFile[]>();
  private next = 1;

  add(files: StateFile[]): number {
    const id = this.next++;
    this.states.set(id, files);
    return id;
  }

  get(id: number): StateFile[] | undefined {
    return this.states.get(id);
  }
}
