/**
 * `spike policy …`: create, apply (upsert from a YAML or JSON file), list,
 * get and delete access policies.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  POLICY_PERMISSIONS,
  type PolicyDocument,
  type PolicyResponse,
  parsePolicyDocument,
  parsePolicyName,
} from '../../shared/api/policies.ts';
import { ConflictError, InvalidRequestError, isBrokerError } from '../../shared/errors/errors.ts';
import { loadYaml, printData } from '../output.ts';
import { type CommandContext, confirm, formatOf, withFormat } from './_context.ts';

/** A policy file larger than this is refused before parsing. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;
/** Policies in one file at most. */
export const MAX_POLICIES_PER_FILE = 1000;

/**
 * The policies in a file's text: one policy object, a list of them, or
 * `{ policies: [...] }`. JSON when the name ends in `.json`, else YAML (a
 * superset of JSON). Each policy is checked strictly, with the wire names
 * (`name`, `spiffeIdPattern`, `pathPattern`, `permissions`); an error names
 * the file and the policy's position. The YAML library is loaded only for a
 * YAML file.
 */
export async function parsePolicyFile(text: string, fileName: string): Promise<PolicyDocument[]> {
  let parsed: unknown;
  try {
    parsed = fileName.toLowerCase().endsWith('.json')
      ? JSON.parse(text)
      : (await loadYaml()).parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : 'malformed';
    throw new InvalidRequestError(
      `${fileName}: not valid ${fileName.endsWith('.json') ? 'JSON' : 'YAML'}: ${reason}`,
    );
  }
  let items: unknown[];
  if (Array.isArray(parsed)) {
    items = parsed;
  } else if (
    typeof parsed === 'object' &&
    parsed !== null &&
    Object.keys(parsed).length === 1 &&
    Array.isArray((parsed as { policies?: unknown }).policies)
  ) {
    items = (parsed as { policies: unknown[] }).policies;
  } else if (typeof parsed === 'object' && parsed !== null) {
    items = [parsed];
  } else {
    throw new InvalidRequestError(
      `${fileName}: expected a policy, a list of policies or { policies: [...] }`,
    );
  }
  if (items.length === 0) {
    throw new InvalidRequestError(`${fileName}: holds no policy`);
  }
  if (items.length > MAX_POLICIES_PER_FILE) {
    throw new InvalidRequestError(`${fileName}: holds more than ${MAX_POLICIES_PER_FILE} policies`);
  }
  const names = new Set<string>();
  return items.map((item, i) => {
    let policy: PolicyDocument;
    try {
      policy = parsePolicyDocument(item);
    } catch (err) {
      throw new InvalidRequestError(
        `${fileName}: policy ${i + 1}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (names.has(policy.name)) {
      throw new InvalidRequestError(`${fileName}: policy "${policy.name}" appears more than once`);
    }
    names.add(policy.name);
    return policy;
  });
}

/** `read,list` → the permissions, checked by the wire parser. */
export function parsePermissions(value: string): string[] {
  return value.split(',').map((item) => item.trim());
}

export function registerPolicyCommands(program: Command, context: CommandContext): void {
  const policy = program.command('policy').description('Manage access policies');

  withFormat(
    policy
      .command('create')
      .description('Create a policy (fails if one with this name exists; see apply)')
      .requiredOption('--name <name>', 'policy name: letters, digits, ".", "_", "-"')
      .requiredOption('--spiffeid-pattern <pattern>', 'which callers, e.g. spiffe://td/apps/web')
      .requiredOption('--path-pattern <pattern>', 'which secret paths, e.g. app/web/**')
      .requiredOption('--permissions <list>', `comma-separated: ${POLICY_PERMISSIONS.join(', ')}`),
  ).action(
    async (
      options: { name: string; spiffeidPattern: string; pathPattern: string; permissions: string },
      command: Command,
    ) => {
      const document = parsePolicyDocument({
        name: options.name,
        spiffeIdPattern: options.spiffeidPattern,
        pathPattern: options.pathPattern,
        permissions: parsePermissions(options.permissions),
      });
      const client = await context.client();
      if (await policyExists(client, document.name)) {
        throw new ConflictError(
          `Policy "${document.name}" already exists; use "spike policy apply" to replace it`,
        );
      }
      const created = await client.putPolicy(document);
      await printData(
        context.output,
        formatOf(command),
        created,
        () => `Created policy "${created.name}"`,
      );
    },
  );

  withFormat(
    policy
      .command('apply')
      .description('Create or replace every policy in a YAML or JSON file')
      .requiredOption('--file <file>', 'policy.yaml or policy.json'),
  ).action(async (options: { file: string }, command: Command) => {
    const text = await readPolicyFile(options.file);
    const documents = await parsePolicyFile(text, options.file);
    const client = await context.client();
    const applied: PolicyResponse[] = [];
    for (const document of documents) {
      applied.push(await client.putPolicy(document));
    }
    await printData(context.output, formatOf(command), { policies: applied }, () =>
      applied.map((item) => `Applied policy "${item.name}"`).join('\n'),
    );
  });

  withFormat(policy.command('list').description('List every policy')).action(
    async (_options: unknown, command: Command) => {
      const client = await context.client();
      const { policies } = await client.listPolicies();
      const format = formatOf(command);
      if (format === 'human' && policies.length === 0) {
        context.output.stderr('No policies found');
        return;
      }
      await printData(context.output, format, { policies }, () => renderPolicyTable(policies));
    },
  );

  withFormat(
    policy.command('get').description('Show one policy').argument('<name>', 'policy name'),
  ).action(async (name: string, _options: unknown, command: Command) => {
    const policyName = parsePolicyName(name);
    const client = await context.client();
    const found = await client.getPolicy(policyName);
    await printData(context.output, formatOf(command), found, () => renderPolicy(found));
  });

  withFormat(
    policy
      .command('delete')
      .description('Delete a policy (asks on a terminal; --yes otherwise)')
      .argument('<name>', 'policy name')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (name: string, options: { yes?: boolean }, command: Command) => {
    const policyName = parsePolicyName(name);
    await confirm(context, `Delete policy "${policyName}"?`, { yes: options.yes });
    const client = await context.client();
    await client.deletePolicy(policyName);
    await printData(
      context.output,
      formatOf(command),
      { name: policyName, deleted: true },
      () => `Deleted policy "${policyName}"`,
    );
  });
}

async function readPolicyFile(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const reason = (err as { code?: string }).code ?? 'unreadable';
    throw new InvalidRequestError(`Cannot read policy file "${path}" (${reason})`);
  }
  if (bytes.length > MAX_POLICY_FILE_BYTES) {
    throw new InvalidRequestError(
      `Policy file "${path}" is larger than ${MAX_POLICY_FILE_BYTES} bytes`,
    );
  }
  return new TextDecoder().decode(bytes);
}

async function policyExists(
  client: { getPolicy(name: string): Promise<unknown> },
  name: string,
): Promise<boolean> {
  try {
    await client.getPolicy(name);
    return true;
  } catch (err) {
    if (isBrokerError(err) && err.code === 'ERR_NOT_FOUND') {
      return false;
    }
    throw err;
  }
}

export function renderPolicy(policy: PolicyResponse): string {
  return [
    `Name:              ${policy.name}`,
    `SPIFFE ID pattern: ${policy.spiffeIdPattern}`,
    `Path pattern:      ${policy.pathPattern}`,
    `Permissions:       ${policy.permissions.join(', ')}`,
    `Created:           ${policy.createdAt}`,
    `Updated:           ${policy.updatedAt}`,
  ].join('\n');
}

function renderPolicyTable(policies: readonly PolicyResponse[]): string {
  const rows = policies.map((p) => [
    p.name,
    p.permissions.join(','),
    p.pathPattern,
    p.spiffeIdPattern,
  ]);
  const header = ['NAME', 'PERMISSIONS', 'PATH PATTERN', 'SPIFFE ID PATTERN'];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  return [header, ...rows]
    .map((row) =>
      row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '),
    )
    .join('\n');
}
