/** An operation status as a labelled badge (colour plus the word: never colour alone). */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span class={`ops-status ops-status-${status.toLowerCase()}`} data-testid={testId}>
      {status}
    </span>
  );
}
