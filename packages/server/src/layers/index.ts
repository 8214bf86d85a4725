/**
 * Layers: OCI layer tars ⇄ directories in overlayfs "upper" format.
 * - readTar: streaming, hostile-input tar reader (PAX/GNU/base-256).
 * - applyLayer: one layer into an empty dir on top of extracted lower layers, confined to the root.
 * - MergedView: read-only resolution over a layer chain without a mount (inspect).
 * - writeTar / archiveView: PAX tar output, e.g. of a merged-view subtree.
 * - neutralizeDevices: live device nodes in a layer-to-be become inert stand-ins.
 */

export { type DeviceRecord, neutralizeDevices } from "./inert-device.js";
export { type ApplyLayerOptions, type ApplyLayerResult, applyLayer } from "./layer-applier.js";
export { type FileType, type MergedStat, MergedView } from "./merged-view.js";
export { readTar, type TarEntry, type TarEntryType, type TarReaderOptions } from "./tar-reader.js";
export {
  type ArchiveOptions,
  archiveView,
  type TarWriterEntry,
  type TarWriterType,
  writeTar,
} from "./tar-writer.js";
