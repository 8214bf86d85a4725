import type { OutputRef } from "./output-ref.js";

/** One stream being captured (e.g. `1.stdout`): appended while the process runs, sealed after. */
export interface OutputFile {
  /** Bytes durably handed to the store so far; the next append starts here. */
  readonly size: number;
  /** Resolves once the bytes are written (an event may then refer to them). */
  append(bytes: Buffer): Promise<void>;
  /** Makes the bytes durable (fsync) and closes the file; a result may then refer to it. */
  seal(): Promise<void>;
}

/** Reads ranges of one operation's streams, keeping each stream open until `close`. */
export interface OutputReader {
  read(ref: OutputRef["$out"], chunkBytes: number): AsyncIterable<Buffer>;
  close(): Promise<void>;
}

/**
 * Captured stdout/stderr of operations, kept outside the metadata database: the database holds
 * small references ({@link OutputRef}) to byte ranges of a per-operation, per-stream file. Streams
 * are written only while their operation runs and never change afterwards.
 */
export interface OutputStore {
  /** Creates (or truncates) the stream `name` of an operation for a new capture. */
  create(operationId: string, name: string): Promise<OutputFile>;
  /**
   * The bytes a reference names, in chunks of at most `chunkBytes` (each read is asynchronous, so
   * the event loop is free between chunks). A stream that is shorter than the reference says
   * (damaged by a crash) yields what it has.
   */
  read(operationId: string, ref: OutputRef["$out"], chunkBytes: number): AsyncIterable<Buffer>;
  /** For many reads of one operation (an event replay): streams are opened once, not per read. */
  reader(operationId: string): OutputReader;
  /** Whether any output of the operation is stored out of line. */
  has(operationId: string): Promise<boolean>;
  /** Removes every stream of an operation. */
  remove(operationId: string): Promise<void>;
  /** Removes the output of operations that `exists` no longer knows (crash leftovers); returns how many. */
  reclaim(exists: (operationId: string) => Promise<boolean>): Promise<number>;
}
