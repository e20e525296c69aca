/**
 * `spike audit …`: offline work on audit logs, with no Nexus and no SVID.
 * `verify` checks log files against their chain and names the first line
 * edited, inserted, deleted, moved or cut (ADR 0027); `new-key` writes a new
 * audit key file. The verifier and the key code are imported only when one
 * of these commands runs, so every other `spike` command starts as before.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AuditNotIntactError, InvalidRequestError } from '../../shared/errors/errors.ts';
import type { AuditReport } from '../../shared/log/audit_verify.ts';
import { printData } from '../output.ts';
import { type CommandContext, formatOf, withFormat } from './_context.ts';

interface VerifyOptions {
  readonly keyFile?: string;
  readonly live?: boolean;
}

export function registerAuditCommands(program: Command, context: CommandContext): void {
  const audit = program
    .command('audit')
    .description('Verify audit logs and make audit keys (offline: no Nexus needed)');

  withFormat(
    audit
      .command('verify')
      .description(
        'Check audit log files against their chain: exit 0 only when intact, else name the first line edited, inserted, deleted, reordered or cut',
      )
      .argument('<files...>', 'the log, after its rotated parts (oldest first)')
      .option('--key-file <path>', 'the audit key file the log was written under')
      .option('--live', 'the last file is still being written: its last segment may be open'),
  ).action(async (files: string[], options: VerifyOptions, command: Command) => {
    const key = options.keyFile === undefined ? undefined : await readKey(options.keyFile);
    const { verifyAuditFiles } = await import('../../shared/log/audit_verify.ts');
    let report: AuditReport;
    try {
      report = verifyAuditFiles(files, {
        ...(key === undefined ? {} : { key }),
        live: options.live === true,
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string') {
        throw new InvalidRequestError(`Cannot read the audit log: ${code}`);
      }
      throw err;
    } finally {
      key?.fill(0);
    }
    await printData(context.output, formatOf(command), report, () => renderReport(report));
    const problem = report.problem;
    if (problem !== null) {
      throw new AuditNotIntactError(
        `${problem.file === '' ? '' : `${problem.file}:${problem.line}: `}${problem.kind}: ${problem.message}`,
      );
    }
  });

  withFormat(
    audit
      .command('new-key')
      .description('Write a new random audit key to a file (mode 0600; an existing file is kept)')
      .argument('<file>', 'where to write the key'),
  ).action(async (file: string, _options: unknown, command: Command) => {
    const { ChainKey, newAuditKeyText, parseAuditKey } = await import(
      '../../shared/log/audit_chain.ts'
    );
    const text = newAuditKeyText();
    try {
      await writeFile(file, text, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new InvalidRequestError(
        code === 'EEXIST'
          ? `"${file}" exists: it is kept (remove it first to replace the key)`
          : `Cannot write "${file}": ${String(code ?? err)}`,
      );
    }
    const key = parseAuditKey(text);
    const keyId = new ChainKey(key).id;
    key.fill(0);
    await printData(context.output, formatOf(command), { file, keyId }, () => `key id: ${keyId}`);
    context.output.stderr(
      `Wrote a new audit key to ${file}. Give it to Nexus or a Keeper (SPIKE_NEXUS_AUDIT_KEY_FILE, SPIKE_KEEPER_AUDIT_KEY_FILE), and keep a copy where logs are verified, away from the logs.`,
    );
  });
}

async function readKey(path: string): Promise<Uint8Array> {
  const { readAuditKeyFile } = await import('../../shared/config/audit_key_file.ts');
  try {
    return readAuditKeyFile(path);
  } catch (err) {
    throw new InvalidRequestError(`The key file "${path}" ${(err as Error).message}`);
  }
}

/** The report as lines: the verdict, the segments, the notes, and the first problem. */
export function renderReport(report: AuditReport): string {
  const lines: string[] = [];
  const files = [...new Set(report.segments.map((segment) => segment.file))];
  lines.push(
    `${report.intact ? 'intact' : 'NOT INTACT'}: ${report.lines} lines read, ${report.events} events, ${report.segments.length} segments${files.length === 0 ? '' : ` (${files.join(', ')})`}`,
  );
  for (const segment of report.segments) {
    lines.push(
      `  segment at ${segment.file}:${segment.line}: ${segment.component}, key ${segment.key}, ${segment.lines} lines, ${segment.end}`,
    );
  }
  for (const note of report.notes) {
    lines.push(`  note: ${note}`);
  }
  const problem = report.problem;
  if (problem !== null) {
    lines.push(
      `  first problem: ${problem.kind}${problem.file === '' ? '' : ` at ${problem.file}:${problem.line}`}: ${problem.message}`,
    );
  }
  return lines.join('\n');
}
