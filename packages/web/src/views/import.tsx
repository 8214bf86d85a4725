import { useEffect, useState } from "preact/hooks";
import { followOperation } from "../components/ops-events.js";
import { Field, type FieldErrors, invalid } from "../components/ops-fields.js";
import { errorText } from "../components/ops-format.js";
import { ImportProgressBar, importProgress, NO_PROGRESS } from "../components/ops-import-progress.js";
import { useConsole } from "../context.js";
import { navigate } from "../router.js";
import type { ViewProps } from "../routes.js";
import "../components/ops.css";

/** The server's tag grammar (images/tag-grammar.ts), checked here to answer before a round trip. */
const TAG = /^[A-Za-z0-9_-]+(?:[:/.][A-Za-z0-9_-]+)*$/;

interface ImportForm {
  reference: string;
  tag: string;
  username: string;
  password: string;
  timeout: string;
}

function validate(f: ImportForm, maxTimeout: number | undefined): FieldErrors {
  const e: FieldErrors = {};
  if (f.reference.trim() === "")
    e["imp-ref"] = "Give an image reference, e.g. docker://registry.example/app:1.0.";
  else if (/\s/.test(f.reference.trim())) e["imp-ref"] = "A reference has no spaces.";
  if (f.tag.trim() !== "" && (!TAG.test(f.tag.trim()) || f.tag.trim().length > 256))
    e["imp-tag"] = 'Letters, digits, "_" and "-" separated by ":", "/" or ".".';
  if ((f.username === "") !== (f.password === ""))
    e["imp-user"] = "Give both a username and a password, or neither.";
  if (f.timeout.trim() !== "") {
    const n = Number(f.timeout);
    if (!Number.isInteger(n) || n < 1) e["imp-timeout"] = "A whole number of seconds, at least 1.";
    else if (maxTimeout !== undefined && n > maxTimeout)
      e["imp-timeout"] = `At most ${maxTimeout} s for this project.`;
  }
  return e;
}

export function ImportView({ query }: ViewProps) {
  const { client, whoami } = useConsole();
  const maxTimeout = whoami.limits["images_import_max_timeout"];
  const opId = query.get("op") ?? "";
  const [f, setF] = useState<ImportForm>({ reference: "", tag: "", username: "", password: "", timeout: "" });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [serverError, setServerError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof ImportForm>(k: K, v: string) => setF((old) => ({ ...old, [k]: v }));

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setServerError(undefined);
    const e = validate(f, maxTimeout);
    setErrors(e);
    if (Object.keys(e).length > 0) return;
    setBusy(true);
    try {
      const body = {
        registry: {
          url: f.reference.trim(),
          ...(f.username === "" ? {} : { credentials: { username: f.username, password: f.password } }),
        },
        ...(f.tag.trim() === "" ? {} : { tag: f.tag.trim() }),
        ...(f.timeout.trim() === "" ? {} : { timeout: Number(f.timeout) }),
      };
      const r = await client.json<{ uuid: string }>("/images/import", { method: "POST", json: body });
      // The password leaves the page's state as soon as the server has it.
      setF((old) => ({ ...old, password: "" }));
      navigate(`/import?op=${encodeURIComponent(r.uuid)}`);
    } catch (err) {
      setServerError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Import</h1>
      <form class="ops-form" onSubmit={submit} noValidate aria-label="New registry import">
        {serverError !== undefined && (
          <p role="alert" class="error" data-testid="import-server-error">
            {serverError}
          </p>
        )}
        <Field
          id="imp-ref"
          label="Image reference"
          error={errors["imp-ref"]}
          hint="docker://<registry>/<path>:<tag>"
        >
          <input
            id="imp-ref"
            value={f.reference}
            placeholder="docker://docker.io/library/alpine:3.20"
            onInput={(e) => set("reference", e.currentTarget.value)}
            {...invalid(errors, "imp-ref")}
          />
        </Field>
        <div class="row">
          <Field id="imp-tag" label="Tag (optional)" error={errors["imp-tag"]}>
            <input
              id="imp-tag"
              value={f.tag}
              placeholder="alpine:3.20"
              onInput={(e) => set("tag", e.currentTarget.value)}
              {...invalid(errors, "imp-tag")}
            />
          </Field>
          <Field
            id="imp-timeout"
            label="Timeout (seconds, optional)"
            error={errors["imp-timeout"]}
            {...(maxTimeout === undefined ? {} : { hint: `at most ${maxTimeout}` })}
          >
            <input
              id="imp-timeout"
              type="number"
              min={1}
              value={f.timeout}
              onInput={(e) => set("timeout", e.currentTarget.value)}
              {...invalid(errors, "imp-timeout")}
            />
          </Field>
        </div>
        <fieldset>
          <legend>Registry credentials (optional)</legend>
          <div class="row">
            <Field id="imp-user" label="Username" error={errors["imp-user"]}>
              <input
                id="imp-user"
                autoComplete="off"
                value={f.username}
                onInput={(e) => set("username", e.currentTarget.value)}
                {...invalid(errors, "imp-user")}
              />
            </Field>
            <label for="imp-pass">
              Password
              <input
                id="imp-pass"
                type="password"
                autoComplete="off"
                value={f.password}
                onInput={(e) => set("password", e.currentTarget.value)}
              />
            </label>
          </div>
        </fieldset>
        <div>
          <button type="submit" disabled={busy}>
            Import
          </button>
        </div>
      </form>
      {opId !== "" && <ImportFollow key={opId} id={opId} />}
    </section>
  );
}

function ImportFollow({ id }: { id: string }) {
  const { client } = useConsole();
  const [p, setP] = useState(NO_PROGRESS);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const ac = new AbortController();
    void followOperation(client, id, {
      signal: ac.signal,
      onEvent: (e) => setP((old) => importProgress(old, e)),
      onFatal: setError,
    });
    return () => ac.abort();
  }, [client, id]);
  return (
    <section aria-labelledby="import-follow-title" data-testid="import-follow">
      <h2 id="import-follow-title">
        Operation{" "}
        <a href={`#/operations/${id}`} class="mono">
          {id}
        </a>
      </h2>
      {error !== undefined ? (
        <p role="alert" class="error">
          {error}
        </p>
      ) : (
        <ImportProgressBar p={p} />
      )}
    </section>
  );
}
