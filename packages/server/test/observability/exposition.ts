/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every family has
 * one HELP and one TYPE line before its samples, names and labels are well formed, counters end
 * in `_total`, and each histogram series has cumulative buckets ending at `+Inf` = `_count`, and
 * a `_sum`. Anything else throws, naming the line.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/;

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = s;
  while (rest.length > 0) {
    const m = LABEL.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    const [whole, k, v] = m as unknown as [string, string, string];
    if (k in out) throw new Error(`label ${k} twice in: ${line}`);
    out[k] = v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    rest = rest.slice(whole.length);
  }
  return out;
}

function parseValue(s: string, line: string): number {
  if (s === "+Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  if (s === "NaN") return Number.NaN;
  const v = Number(s);
  if (s === "" || Number.isNaN(v)) throw new Error(`bad value in: ${line}`);
  return v;
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  let current: Family | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) {
      const [, name, ...help] = line.split(" ").slice(1);
      if (!name || !NAME.test(name) || helps.has(name)) throw new Error(`bad or repeated HELP: ${line}`);
      helps.set(name, help.join(" "));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, name, type, extra] = line.split(" ").slice(1);
      if (!name || !NAME.test(name) || families.has(name) || extra !== undefined)
        throw new Error(`bad or repeated TYPE: ${line}`);
      if (type !== "counter" && type !== "gauge" && type !== "histogram")
        throw new Error(`unexpected type: ${line}`);
      const help = helps.get(name);
      if (help === undefined || help.length === 0) throw new Error(`TYPE without HELP before it: ${line}`);
      if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter without _total: ${line}`);
      current = { name, type, help, samples: [] };
      families.set(name, current);
      continue;
    }
    if (line.startsWith("#") || line.trim() === "")
      throw new Error(`unexpected line: ${JSON.stringify(line)}`);
    const m = SAMPLE.exec(line);
    if (!m || !current) throw new Error(`bad sample or sample before TYPE: ${line}`);
    const [, name, labels, value] = m as unknown as [string, string, string | undefined, string];
    const allowed =
      current.type === "histogram"
        ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`]
        : [current.name];
    if (!allowed.includes(name)) throw new Error(`sample of another family under ${current.name}: ${line}`);
    current.samples.push({ name, labels: parseLabels(labels ?? "", line), value: parseValue(value, line) });
  }
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const key = (l: Record<string, string>) =>
    JSON.stringify(
      Object.entries(l)
        .filter(([k]) => k !== "le")
        .sort(),
    );
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const k = key(s.labels);
    const entry = series.get(k) ?? { buckets: [] };
    series.set(k, entry);
    if (s.name.endsWith("_bucket")) {
      const le = s.labels["le"];
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      entry.buckets.push([parseValue(le, le), s.value]);
    } else if (s.name.endsWith("_sum")) entry.sum = s.value;
    else entry.count = s.value;
  }
  for (const [k, s] of series) {
    const where = `${f.name}${k}`;
    if (s.sum === undefined || s.count === undefined) throw new Error(`${where}: no _sum or _count`);
    const last = s.buckets.at(-1);
    if (!last || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${where}: last bucket is not +Inf`);
    if (last[1] !== s.count) throw new Error(`${where}: +Inf bucket ${last[1]} != _count ${s.count}`);
    for (let i = 1; i < s.buckets.length; i++) {
      const [le0, c0] = s.buckets[i - 1] as [number, number];
      const [le1, c1] = s.buckets[i] as [number, number];
      if (!(le1 > le0)) throw new Error(`${where}: bucket bounds not increasing`);
      if (c1 < c0) throw new Error(`${where}: buckets not cumulative`);
    }
  }
}

/** The value of one series (0 when absent: a counter or gauge never set). */
export function sampleValue(
  fams: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const base = name.replace(/_(bucket|sum|count)$/, "");
  const f = fams.get(name) ?? fams.get(base);
  if (!f) throw new Error(`no metric family ${name}`);
  const want = Object.entries(labels);
  const s = f.samples.find(
    (x) =>
      x.name === name &&
      Object.keys(x.labels).length === want.length &&
      want.every(([k, v]) => x.labels[k] === v),
  );
  return s?.value ?? 0;
}
