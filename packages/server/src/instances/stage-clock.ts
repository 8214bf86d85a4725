/** Names of a run's stages, in the order they happen (metrics label them so). */
type RunStage = "prepare" | "start" | "run" | "commit" | "teardown";

/**
 * Times the stages of one run: entering a stage ends the one before, and each stage entered is
 * reported once, with its duration in seconds. A failing observer never fails the run.
 */
export class StageClock {
  private current: { stage: RunStage; t0: number } | null = null;

  constructor(private readonly observe?: (stage: string, seconds: number) => void) {}

  enter(stage: RunStage): void {
    this.end();
    this.current = { stage, t0: performance.now() };
  }

  end(): void {
    const c = this.current;
    if (c === null) return;
    this.current = null;
    try {
      this.observe?.(c.stage, (performance.now() - c.t0) / 1000);
    } catch {
      // Metrics are best effort.
    }
  }
}
