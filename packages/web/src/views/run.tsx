import { useEffect, useState } from "preact/hooks";
import type { Image } from "../api/types.js";
import { Field, type FieldErrors, invalid, uploadFile } from "../components/ops-fields.js";
import { errorText } from "../components/ops-format.js";
import { useConsole } from "../context.js";
import { navigate } from "../router.js";
import type { ViewProps } from "../routes.js";
import "../components/ops.css";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface EnvRow {
  key: string;
  value: string;
}

interface RunForm {
  image: string;
  command: string;
  shell: boolean;
  env: EnvRow[];
  cwd: string;
  fileDir: string;
  timeout: string;
  networking: "" | "on" | "off";
  tty: boolean;
}

/** The image field as the API wants it: a uuid as is, anything else a tag (`tag:NAME`). */
export function imageRef(v: string): string {
  const t = v.trim();
  return UUID.test(t) || t.startsWith("tag:") ? t : `tag:${t}`;
}

function validate(f: RunForm, files: readonly File[], maxTimeout: number | undefined): FieldErrors {
  const e: FieldErrors = {};
  if (f.image.trim() === "" || f.image.trim() === "tag:") e["run-image"] = "Give an image uuid or tag.";
  if (f.command.trim() === "") e["run-command"] = "Give a command.";
  if (f.cwd.trim() !== "" && !f.cwd.trim().startsWith("/"))
    e["run-cwd"] = "The directory must be absolute (start with /).";
  const seen = new Set<string>();
  f.env.forEach((r, i) => {
    if (r.key === "" && r.value === "") return;
    if (!ENV_KEY.test(r.key)) e[`run-env-${i}`] = "Letters, digits and _, not starting with a digit.";
    else if (seen.has(r.key)) e[`run-env-${i}`] = `${r.key} is set twice.`;
    seen.add(r.key);
  });
  if (files.length > 0 && !f.fileDir.trim().startsWith("/"))
    e["run-filedir"] = "The directory must be absolute.";
  if (f.timeout.trim() !== "") {
    const n = Number(f.timeout);
    if (!Number.isInteger(n) || n < 1) e["run-timeout"] = "A whole number of seconds, at least 1.";
    else if (maxTimeout !== undefined && n > maxTimeout)
      e["run-timeout"] = `At most ${maxTimeout} s for this project.`;
  }
  return e;
}

export function RunView({ query }: ViewProps) {
  const { client, whoami } = useConsole();
  const maxTimeout = whoami.limits["instance_max_timeout"];
  const [f, setF] = useState<RunForm>({
    image: query.get("image") ?? "",
    command: "",
    shell: true,
    env: [{ key: "", value: "" }],
    cwd: "",
    fileDir: "/root",
    timeout: "60",
    networking: "",
    tty: false,
  });
  const [files, setFiles] = useState<File[]>([]);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [serverError, setServerError] = useState<string | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [tags, setTags] = useState<string[]>([]);

  useEffect(() => {
    client.json<{ images: Image[] }>("/images", { query: { tagged: 1, limit: 200 } }).then(
      (r) => setTags(r.images.map((i) => i.tag).filter((t): t is string => t !== null)),
      () => setTags([]), // suggestions only: the field still takes any uuid or tag
    );
  }, [client]);

  const set = <K extends keyof RunForm>(k: K, v: RunForm[K]) => setF((old) => ({ ...old, [k]: v }));
  const setEnv = (i: number, r: Partial<EnvRow>) =>
    setF((old) => ({ ...old, env: old.env.map((x, j) => (j === i ? { ...x, ...r } : x)) }));

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setServerError(undefined);
    const e = validate(f, files, maxTimeout);
    setErrors(e);
    if (Object.keys(e).length > 0) return;
    try {
      const mapped: Record<string, { uuid: string; mode: string }> = {};
      const dir = f.fileDir.trim().replace(/\/+$/, "");
      for (let i = 0; i < files.length; i++) {
        const file = files[i]!;
        setBusy(`Uploading ${file.name} (${i + 1} of ${files.length})…`);
        mapped[`${dir}/${file.name}`] = { uuid: await uploadFile(client, file), mode: "0644" };
      }
      setBusy("Starting…");
      const env: Record<string, string> = {};
      for (const r of f.env) if (r.key !== "") env[r.key] = r.value;
      const body = {
        image: imageRef(f.image),
        command: f.command,
        shell: f.shell,
        env,
        ...(f.cwd.trim() === "" ? {} : { cwd: f.cwd.trim() }),
        ...(f.timeout.trim() === "" ? {} : { timeout: Number(f.timeout) }),
        ...(files.length === 0 ? {} : { files: mapped }),
        ...(f.networking === "" ? {} : { networking: { enabled: f.networking === "on" } }),
        // The terminal view fits rows and columns to the window as soon as it attaches.
        ...(f.tty ? { tty: true, rows: 24, cols: 80 } : {}),
      };
      const r = await client.json<{ uuid: string }>("/instances", { method: "POST", json: body });
      navigate(f.tty ? `/operations/${r.uuid}/terminal` : `/operations/${r.uuid}`);
    } catch (err) {
      setServerError(errorText(err));
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Run</h1>
      <form class="ops-form" onSubmit={submit} noValidate aria-label="New run">
        {serverError !== undefined && (
          <p role="alert" class="error" data-testid="run-server-error">
            {serverError}
          </p>
        )}
        <Field id="run-image" label="Image (uuid or tag)" error={errors["run-image"]}>
          <input
            id="run-image"
            value={f.image}
            list="run-image-tags"
            placeholder="busybox:latest"
            onInput={(e) => set("image", e.currentTarget.value)}
            {...invalid(errors, "run-image")}
          />
        </Field>
        <datalist id="run-image-tags">
          {tags.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <Field id="run-command" label="Command" error={errors["run-command"]}>
          <textarea
            id="run-command"
            rows={3}
            class="mono"
            value={f.command}
            placeholder="echo hello"
            onInput={(e) => set("command", e.currentTarget.value)}
            {...invalid(errors, "run-command")}
          />
        </Field>
        <label class="check" for="run-shell">
          <input
            id="run-shell"
            type="checkbox"
            checked={f.shell}
            onChange={(e) => set("shell", e.currentTarget.checked)}
          />
          Run through the shell (<code>/bin/sh -c</code>)
        </label>
        <label class="check" for="run-tty">
          <input
            id="run-tty"
            type="checkbox"
            checked={f.tty}
            onChange={(e) => set("tty", e.currentTarget.checked)}
          />
          Terminal (tty): an interactive terminal in the browser, e.g. for <code>sh</code>
        </label>
        <fieldset>
          <legend>Environment</legend>
          {f.env.map((r, i) => (
            <div class="env-row" key={i}>
              <Field id={`run-env-${i}`} label="Name" error={errors[`run-env-${i}`]}>
                <input
                  id={`run-env-${i}`}
                  value={r.key}
                  onInput={(e) => setEnv(i, { key: e.currentTarget.value })}
                  {...invalid(errors, `run-env-${i}`)}
                />
              </Field>
              <label for={`run-env-value-${i}`}>
                Value
                <input
                  id={`run-env-value-${i}`}
                  value={r.value}
                  onInput={(e) => setEnv(i, { value: e.currentTarget.value })}
                />
              </label>
              <button
                type="button"
                class="secondary"
                aria-label={`Remove variable ${i + 1}`}
                onClick={() => setF((old) => ({ ...old, env: old.env.filter((_, j) => j !== i) }))}
              >
                Remove
              </button>
            </div>
          ))}
          <div>
            <button
              type="button"
              class="secondary"
              onClick={() => setF((old) => ({ ...old, env: [...old.env, { key: "", value: "" }] }))}
            >
              Add variable
            </button>
          </div>
        </fieldset>
        <div class="row">
          <Field
            id="run-cwd"
            label="Working directory"
            error={errors["run-cwd"]}
            hint="empty: the server's default (/root)"
          >
            <input
              id="run-cwd"
              value={f.cwd}
              placeholder="/root"
              onInput={(e) => set("cwd", e.currentTarget.value)}
              {...invalid(errors, "run-cwd")}
            />
          </Field>
          <Field
            id="run-timeout"
            label="Timeout (seconds)"
            error={errors["run-timeout"]}
            {...(maxTimeout === undefined ? {} : { hint: `at most ${maxTimeout}` })}
          >
            <input
              id="run-timeout"
              type="number"
              min={1}
              {...(maxTimeout === undefined ? {} : { max: maxTimeout })}
              value={f.timeout}
              onInput={(e) => set("timeout", e.currentTarget.value)}
              {...invalid(errors, "run-timeout")}
            />
          </Field>
          <label for="run-networking">
            Networking
            <select
              id="run-networking"
              value={f.networking}
              onChange={(e) => set("networking", e.currentTarget.value as RunForm["networking"])}
            >
              <option value="">server default</option>
              <option value="on">enabled</option>
              <option value="off">disabled</option>
            </select>
          </label>
        </div>
        <fieldset>
          <legend>Files to upload into the sandbox</legend>
          <div class="row">
            <label for="run-files">
              Files
              <input
                id="run-files"
                type="file"
                multiple
                onChange={(e) => setFiles(Array.from(e.currentTarget.files ?? []))}
              />
            </label>
            <Field id="run-filedir" label="Into directory" error={errors["run-filedir"]}>
              <input
                id="run-filedir"
                value={f.fileDir}
                onInput={(e) => set("fileDir", e.currentTarget.value)}
                {...invalid(errors, "run-filedir")}
              />
            </Field>
          </div>
          {files.length > 0 && (
            <p class="small muted">
              {files.map((x) => `${f.fileDir.replace(/\/+$/, "")}/${x.name}`).join(", ")}
            </p>
          )}
        </fieldset>
        <div>
          <button type="submit" disabled={busy !== undefined}>
            Run
          </button>{" "}
          {busy !== undefined && <span class="muted">{busy}</span>}
        </div>
      </form>
    </section>
  );
}
