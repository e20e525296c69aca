/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * tests: it throws on any line a scraper would refuse (a sample before its
 * TYPE, a TYPE given twice, a bad name, label or value, a histogram whose
 * buckets do not add up), and returns every family with its samples.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string | undefined;
  readonly samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const NAME_REGEXP = new RegExp(`^${NAME}$`);
const LABEL_NAME_REGEXP = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SAMPLE_REGEXP = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  if (text !== '' && !text.endsWith('\n')) {
    throw new Error('The exposition must end with a line feed');
  }
  const lines = text.split('\n').slice(0, -1);
  for (const [index, line] of lines.entries()) {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (match === null) continue; // a plain comment
      const [, keyword, name, rest] = match as unknown as [string, string, string, string];
      if (!NAME_REGEXP.test(name)) throw new Error(`Bad metric name at ${where}`);
      if (keyword === 'HELP') {
        if (helps.has(name)) throw new Error(`HELP given twice at ${where}`);
        helps.set(name, rest);
        continue;
      }
      if (!TYPES.has(rest)) throw new Error(`Unknown type at ${where}`);
      if (families.has(name)) throw new Error(`TYPE given twice at ${where}`);
      families.set(name, { name, type: rest, help: undefined, samples: [] });
      continue;
    }
    const match = SAMPLE_REGEXP.exec(line);
    if (match === null) throw new Error(`Not a sample at ${where}`);
    const [, name, labelText, valueText] = match as unknown as [string, string, string?, string?];
    const family = familyOf(families, name);
    if (family === undefined) throw new Error(`Sample without a TYPE before it at ${where}`);
    family.samples.push({
      name,
      labels: parseLabels(labelText ?? '', where),
      value: parseValue(valueText as string, where),
    });
  }
  const out = new Map<string, Family>();
  for (const [name, family] of families) {
    const complete = { ...family, help: helps.get(name) };
    if (family.type === 'histogram') checkHistogram(complete);
    out.set(name, complete);
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function sampleValue(
  families: ReadonlyMap<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const found: Sample[] = [];
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (
        sample.name === name &&
        Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
      ) {
        found.push(sample);
      }
    }
  }
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match`);
  return found[0]?.value;
}

function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const own = families.get(name);
  if (own !== undefined) return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const family = families.get(name.slice(0, -suffix.length));
    if (family !== undefined && (family.type === 'histogram' || family.type === 'summary')) {
      return family;
    }
  }
  return undefined;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest !== '') {
    const match = /^([^=]+)="((?:[^"\\]|\\.)*)"(,?)/.exec(rest);
    if (match === null) throw new Error(`Bad labels at ${where}`);
    const [whole, name, raw, comma] = match as unknown as [string, string, string, string];
    if (!LABEL_NAME_REGEXP.test(name)) throw new Error(`Bad label name "${name}" at ${where}`);
    if (Object.hasOwn(labels, name)) throw new Error(`Label "${name}" twice at ${where}`);
    labels[name] = raw.replace(/\\(.)/g, (_, c: string) => {
      if (c === 'n') return '\n';
      if (c === '\\' || c === '"') return c;
      throw new Error(`Bad escape in a label value at ${where}`);
    });
    rest = rest.slice(whole.length);
    if (comma === '' && rest !== '') throw new Error(`Bad labels at ${where}`);
  }
  return labels;
}

/** As Prometheus reads it (Go's ParseFloat): Inf and NaN in any case (prom-client writes `Nan`). */
function parseValue(text: string, where: string): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`Bad value at ${where}`);
  }
  return Number(text);
}

/** Buckets cumulative and ending at `+Inf` equal to `_count`, per label set. */
function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
      group.buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), sample.value]);
    } else if (sample.name.endsWith('_count')) {
      group.count = sample.value;
    }
  }
  for (const [key, group] of groups) {
    let previous = -1;
    let bound = Number.NEGATIVE_INFINITY;
    for (const [le, value] of group.buckets) {
      if (!(le > bound) || value < previous) {
        throw new Error(`${family.name} ${key}: buckets not increasing`);
      }
      bound = le;
      previous = value;
    }
    if (bound !== Number.POSITIVE_INFINITY || previous !== group.count) {
      throw new Error(`${family.name} ${key}: the +Inf bucket is not the count`);
    }
  }
}
