/**
 * The configuration file of `spike agent` (YAML; docs/delivery.md#spike-agent):
 *
 *     templates:
 *       - destination: /run/app/db.env   # relative: to the file's folder
 *         mode: "0640"                   # default "0600"
 *         contents: "DB_PASSWORD={{ app/db#password }}\n"   # or source: db.tmpl
 *         command: [systemctl, reload, app]                 # or signal: …
 *         signal: { pidFile: /run/app.pid, name: SIGHUP }
 *
 * Every problem of the file is reported at once (`ERR_CONFIG_INVALID`), and
 * nothing is fetched or written while there is one.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../shared/errors/errors.ts';
import { isSignalName, type SignalName } from '../../shared/runtime/signals.ts';
import { loadYaml } from '../output.ts';
import { parseTemplate, type Template } from './template.ts';

export const DEFAULT_MODE = 0o600;
/** The largest configuration or template file read. */
const MAX_FILE_BYTES = 1024 * 1024;

export interface TemplateConfig {
  /** Absolute. */
  readonly destination: string;
  readonly mode: number;
  readonly template: Template;
  /** Run (no shell) after the file changed. */
  readonly command?: readonly string[];
  /** Sent to the process whose ID is in `pidFile` after the file changed. */
  readonly signal?: { readonly pidFile: string; readonly name: SignalName };
}

export interface AgentConfig {
  readonly templates: readonly TemplateConfig[];
}

const TOP_KEYS = ['templates'];
const TEMPLATE_KEYS = ['destination', 'mode', 'contents', 'source', 'command', 'signal'];

/** Reads and checks the file; throws ConfigError with every problem. */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  const text = await readText(file, 'the configuration file');
  let parsed: unknown;
  try {
    parsed = (await loadYaml()).parse(text);
  } catch (err) {
    throw new ConfigError([`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  return parseAgentConfig(parsed, file, (path) => readText(path, 'the template source'));
}

async function readText(path: string, what: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new ConfigError([
      `cannot read ${what} ${path} (${(err as { code?: string }).code ?? 'unreadable'})`,
    ]);
  }
  if (bytes.length > MAX_FILE_BYTES) {
    throw new ConfigError([`${what} ${path} is larger than ${MAX_FILE_BYTES} bytes`]);
  }
  return new TextDecoder().decode(bytes);
}

/** Checks a parsed configuration; `readSource` reads a template's `source` file. */
export async function parseAgentConfig(
  parsed: unknown,
  file: string,
  readSource: (path: string) => Promise<string>,
): Promise<AgentConfig> {
  const problems: string[] = [];
  const folder = dirname(resolve(file));
  if (!isRecord(parsed)) {
    throw new ConfigError([`${file}: expected a mapping with "templates"`]);
  }
  for (const key of Object.keys(parsed)) {
    if (!TOP_KEYS.includes(key)) problems.push(`${file}: unknown setting "${key}"`);
  }
  const items = parsed.templates;
  if (!Array.isArray(items) || items.length === 0) {
    problems.push(`${file}: "templates" must be a non-empty list`);
    throw new ConfigError(problems);
  }
  const templates: TemplateConfig[] = [];
  const destinations = new Set<string>();
  for (const [i, item] of items.entries()) {
    const where = `${file}: templates[${i}]`;
    if (!isRecord(item)) {
      problems.push(`${where}: expected a mapping`);
      continue;
    }
    for (const key of Object.keys(item)) {
      if (!TEMPLATE_KEYS.includes(key)) problems.push(`${where}: unknown setting "${key}"`);
    }
    const destination =
      typeof item.destination === 'string' && item.destination !== ''
        ? resolve(folder, item.destination)
        : undefined;
    if (destination === undefined) {
      problems.push(`${where}.destination: required, a file path`);
    } else if (destinations.has(destination)) {
      problems.push(
        `${where}.destination: ${destination} is the destination of an earlier template`,
      );
    } else {
      destinations.add(destination);
    }
    const mode = parseMode(item.mode, `${where}.mode`, problems);
    const body = await templateText(item, where, folder, readSource, problems);
    let template: Template | undefined;
    if (body !== undefined) {
      try {
        template = parseTemplate(body);
      } catch (err) {
        problems.push(`${where}: ${(err as Error).message}`);
      }
    }
    const command = parseCommand(item.command, `${where}.command`, problems);
    const signal = parseSignal(item.signal, `${where}.signal`, folder, problems);
    if (command !== undefined && signal !== undefined) {
      problems.push(`${where}: give "command" or "signal", not both`);
    }
    if (destination !== undefined && mode !== undefined && template !== undefined) {
      templates.push({
        destination,
        mode,
        template,
        ...(command === undefined ? {} : { command }),
        ...(signal === undefined ? {} : { signal }),
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { templates };
}

async function templateText(
  item: Record<string, unknown>,
  where: string,
  folder: string,
  readSource: (path: string) => Promise<string>,
  problems: string[],
): Promise<string | undefined> {
  const hasContents = item.contents !== undefined;
  const hasSource = item.source !== undefined;
  if (hasContents === hasSource) {
    problems.push(
      `${where}: give exactly one of "contents" (the template) and "source" (its file)`,
    );
    return undefined;
  }
  if (hasContents) {
    if (typeof item.contents === 'string') return item.contents;
    problems.push(`${where}.contents: must be text`);
    return undefined;
  }
  if (typeof item.source !== 'string' || item.source === '') {
    problems.push(`${where}.source: must be a file path`);
    return undefined;
  }
  try {
    return await readSource(isAbsolute(item.source) ? item.source : resolve(folder, item.source));
  } catch (err) {
    problems.push(
      `${where}.source: ${err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message}`,
    );
    return undefined;
  }
}

/** `"0640"` or `"640"`: octal permission bits, quoted (YAML reads 0640 as the number 640). */
function parseMode(value: unknown, where: string, problems: string[]): number | undefined {
  if (value === undefined) return DEFAULT_MODE;
  if (typeof value !== 'string' || !/^0?[0-7]{3}$/.test(value)) {
    problems.push(`${where}: octal permissions in quotes, such as "0600" or "0640"`);
    return undefined;
  }
  return Number.parseInt(value, 8);
}

function parseCommand(value: unknown, where: string, problems: string[]): string[] | undefined {
  if (value === undefined) return undefined;
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((part) => typeof part === 'string') ||
    value[0] === ''
  ) {
    problems.push(
      `${where}: a list of the program and its arguments, such as [systemctl, reload, app] (no shell: use [sh, -c, "…"] for one)`,
    );
    return undefined;
  }
  return value as string[];
}

function parseSignal(
  value: unknown,
  where: string,
  folder: string,
  problems: string[],
): { pidFile: string; name: SignalName } | undefined {
  if (value === undefined) return undefined;
  if (
    !isRecord(value) ||
    typeof value.pidFile !== 'string' ||
    value.pidFile === '' ||
    Object.keys(value).some((key) => key !== 'pidFile' && key !== 'name')
  ) {
    problems.push(`${where}: a mapping { pidFile: FILE, name: SIGHUP }`);
    return undefined;
  }
  const name = value.name ?? 'SIGHUP';
  if (typeof name !== 'string' || !isSignalName(name) || name === 'SIGKILL' || name === 'SIGSTOP') {
    problems.push(`${where}.name: a signal name such as SIGHUP or SIGUSR1`);
    return undefined;
  }
  return { pidFile: resolve(folder, value.pidFile), name };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
