/** A labelled form field with its validation message beside it (linked for screen readers). */
import type { ComponentChildren } from "preact";

export type FieldErrors = Record<string, string>;

export function Field(props: {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  children: ComponentChildren;
}) {
  // The message sits outside the label (linked by aria-describedby), so it is not part of the name.
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint !== undefined && <span class="small muted">{props.hint}</span>}
      {props.error !== undefined && (
        <span class="field-error" id={`${props.id}-error`} data-testid={`${props.id}-error`}>
          {props.error}
        </span>
      )}
    </div>
  );
}

/** aria attributes of an input whose field may carry an error. */
export function invalid(errors: FieldErrors, id: string) {
  return errors[id] === undefined ? {} : { "aria-invalid": true as const, "aria-describedby": `${id}-error` };
}

/** Uploads one file's bytes (`POST /v1/files`, raw body) and returns its uuid. */
export async function uploadFile(
  client: { url(p: string): string; headers(extra?: Record<string, string>): Headers },
  file: Blob,
): Promise<string> {
  let res: Response;
  try {
    res = await fetch(client.url("/files"), {
      method: "POST",
      headers: client.headers({ "content-type": "application/octet-stream" }),
      body: file,
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("the server cannot be reached");
  }
  const text = await res.text();
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    j = undefined;
  }
  const o = (j ?? {}) as { uuid?: unknown; error?: unknown };
  if (!res.ok) throw new Error(typeof o.error === "string" ? o.error : `HTTP ${res.status}`);
  if (typeof o.uuid !== "string") throw new Error("the upload answered without a file uuid");
  return o.uuid;
}
