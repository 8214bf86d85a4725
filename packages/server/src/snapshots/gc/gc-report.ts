/** What one garbage collection pass did (or, dry, would do). One object per pass. */
export interface GcReport {
  dryRun: boolean;
  /** Epoch ms. */
  startedAt: number;
  durationMs: number;
  /** Tombstoned by retention (the `beforeMark` hook) in this pass. */
  imagesExpired: number;
  filesExpired: number;
  /** Image rows hard-deleted: tombstones no live image needs for lineage. */
  tombstonesRemoved: number;
  /** Layer rows and dirs (dirs without a row counted too). */
  layersRemoved: number;
  bytesFreed: number;
  blobsRemoved: number;
  stagingRemoved: number;
  runDirsRemoved: number;
  leasesExpired: number;
  /** Time spent marking and sweeping (the rest is retention and waiting for the lock). */
  markMs: number;
  sweepMs: number;
}

export function emptyReport(dryRun: boolean, startedAt: number): GcReport {
  return {
    dryRun,
    startedAt,
    durationMs: 0,
    imagesExpired: 0,
    filesExpired: 0,
    tombstonesRemoved: 0,
    layersRemoved: 0,
    bytesFreed: 0,
    blobsRemoved: 0,
    stagingRemoved: 0,
    runDirsRemoved: 0,
    leasesExpired: 0,
    markMs: 0,
    sweepMs: 0,
  };
}

/** Human-readable bytes (binary units). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** The lines `contree-server gc` prints. */
export function formatReport(r: GcReport): string {
  const verb = r.dryRun ? "would free" : "freed";
  const lines = [
    `${verb} ${formatBytes(r.bytesFreed)} in ${r.durationMs} ms (mark ${r.markMs} ms, sweep ${r.sweepMs} ms)`,
    `  layers:          ${r.layersRemoved}`,
    `  images (rows):   ${r.tombstonesRemoved}`,
    `  blobs:           ${r.blobsRemoved}`,
    `  staging dirs:    ${r.stagingRemoved}`,
    `  run dirs:        ${r.runDirsRemoved}`,
    `  expired leases:  ${r.leasesExpired}`,
  ];
  if (!r.dryRun) lines.push(`  expired by retention: ${r.imagesExpired} images, ${r.filesExpired} files`);
  return lines.join("\n");
}
