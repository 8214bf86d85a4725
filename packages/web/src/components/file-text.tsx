import { commentStyle, highlightLine } from "../text/highlight.js";

/** At most this many lines are drawn (the rest: download the file). */
const MAX_LINES = 5000;

/**
 * A text file with line numbers and light highlighting. Every piece of the file is a text node
 * (JSX children), never markup: a file holding `<script>` shows the characters.
 */
export function FileText({ path, text }: { path: string; text: string }) {
  const style = commentStyle(path);
  const lines = text.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const shown = lines.slice(0, MAX_LINES);
  return (
    <>
      <pre class="file" data-testid="file-text">
        {shown.map((line, i) => (
          <div key={i}>
            <span class="ln" aria-hidden="true">
              {i + 1}
            </span>
            {highlightLine(line, style).map((t, j) =>
              t.cls === "" ? (
                t.text
              ) : (
                <span key={j} class={`hl-${t.cls}`}>
                  {t.text}
                </span>
              ),
            )}
          </div>
        ))}
      </pre>
      {lines.length > MAX_LINES && (
        <p class="muted small">
          First {MAX_LINES} of {lines.length} lines shown; download the file for the rest.
        </p>
      )}
    </>
  );
}
