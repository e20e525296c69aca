/**
 * The docs against the code they describe, so they cannot drift apart
 * unnoticed. docs/api.md's error tables must list every error code with
 * the status that shared/errors/http_status.ts (THE table) gives it, row for
 * row, and name no code that does not exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../shared/errors/errors.ts';
import { STATUS_BY_CODE } from '../shared/errors/http_status.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CODE_REGEXP = /`(ERR_[A-Z0-9_]+)`/g;
const ANY_CODE_REGEXP = /\bERR_[A-Z0-9_]+\b/g;

function readDoc(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

/** The text of a `## heading` section, up to the next `## ` heading. */
function sectionOf(markdown: string, heading: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.trim() === `## ${heading}`);
  assert.notEqual(start, -1, `no "## ${heading}" section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n');
}

/**
 * Every `[code, status]` of the tables in `text` whose first cell names
 * error codes (in backticks; several share a row) and whose second cell is
 * an HTTP status.
 */
function errorRows(text: string): Array<[string, number]> {
  const rows: Array<[string, number]> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) continue;
    const [codes = '', status = ''] = line.split('|').slice(1, 3);
    const names = [...codes.matchAll(CODE_REGEXP)].map((match) => match[1] as string);
    if (names.length === 0) continue;
    assert.match(status.trim(), /^\d{3}$/, `row of ${names.join(', ')} has no status`);
    for (const name of names) rows.push([name, Number(status.trim())]);
  }
  return rows;
}

describe('docs/api.md', () => {
  const apiMd = readDoc('docs/api.md');
  const rows = errorRows(sectionOf(apiMd, 'Errors'));

  test('lists each error code once', () => {
    const seen = new Set<string>();
    for (const [code] of rows) {
      assert.ok(!seen.has(code), `${code} is listed twice`);
      seen.add(code);
    }
  });

  test('its error tables match shared/errors/http_status.ts exactly', () => {
    const documented = Object.fromEntries(rows);
    assert.deepEqual(documented, { ...STATUS_BY_CODE });
  });

  test('its error tables name every code of shared/errors and no other', () => {
    assert.deepEqual(rows.map(([code]) => code).sort(), [...ERROR_CODES].sort());
  });

  test('names no error code that does not exist', () => {
    const known = new Set<string>(ERROR_CODES);
    const unknown = [...new Set(apiMd.match(ANY_CODE_REGEXP) ?? [])].filter(
      (code) => !known.has(code),
    );
    assert.deepEqual(unknown, []);
  });
});
