/**
 * docs/errors.md must list the same codes and statuses as src/core/errors.ts
 * and the same close codes as src/protocol/codes.ts, so the reference cannot
 * drift from the code.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ErrorCodes } from '../../src/core/errors.js';
import { CloseCode, Disconnects } from '../../src/protocol/codes.js';

// The compiled test lives in dist/test/unit/; the doc is at the repository root.
const DOC = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The lines under the `## title` heading, up to the next `## ` heading. */
function section(title: string): string[] {
  const lines = DOC.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${title}`);
  assert.notEqual(start, -1, `docs/errors.md has no "## ${title}" section`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith('## '));
  return end === -1 ? rest : rest.slice(0, end);
}

/** Body rows of the first table in `lines`: cells trimmed, header and separator skipped. */
function tableRows(lines: string[]): string[][] {
  const table = lines.filter((l) => l.trimStart().startsWith('|'));
  assert.ok(table.length >= 2, 'a table with a header and a separator');
  return table.slice(2).map((l) => l.trim().slice(1, -1).split('|').map((c) => c.trim()));
}

/** The text inside one pair of backticks, or undefined. */
function ticked(cell: string): string | undefined {
  return /^`([^`]+)`$/.exec(cell)?.[1];
}

interface DocError {
  readonly code: string;
  readonly status: number;
  readonly close: number | undefined;
}

function errorRows(): DocError[] {
  return tableRows(section('Error codes')).map((cells) => {
    assert.equal(cells.length, 4, `four cells in | ${cells.join(' | ')} |`);
    const [codeCell, statusCell, closeCell] = cells as [string, string, string];
    const code = ticked(codeCell);
    assert.ok(code !== undefined, `the first cell is a code in backticks: ${codeCell}`);
    assert.match(statusCell, /^\d{3}$/, `HTTP status of ${code}`);
    assert.match(closeCell, /^(\d{4}|–)$/, `close code of ${code}`);
    return { code, status: Number(statusCell), close: closeCell === '–' ? undefined : Number(closeCell) };
  });
}

test('errors doc - the error table lists exactly the codes of ErrorCodes, in order', () => {
  assert.deepEqual(
    errorRows().map((r) => r.code),
    Object.keys(ErrorCodes),
  );
});

test('errors doc - each code has the HTTP status of ErrorCodes and the close code of its disconnect', () => {
  const specs: Record<string, { status: number }> = ErrorCodes;
  const disconnects: Record<string, { code: number }> = Disconnects;
  for (const row of errorRows()) {
    const spec = specs[row.code];
    assert.ok(spec !== undefined, `${row.code} is in ErrorCodes`);
    assert.equal(row.status, spec.status, `HTTP status of ${row.code}`);
    assert.equal(row.close, disconnects[row.code]?.code, `close code of ${row.code}`);
  }
});

test('errors doc - every disconnect reason is an error code', () => {
  for (const [reason, d] of Object.entries(Disconnects)) {
    assert.ok(reason in ErrorCodes, `${reason} is in ErrorCodes`);
    assert.ok(d.reason === reason || d.reason === '', `the reason text of ${reason} is its code (or empty where ws closes by itself)`);
  }
});

test('errors doc - every CloseCode appears in the close code table with its name', () => {
  const rows = tableRows(section('Close codes')).map((cells) => {
    assert.equal(cells.length, 4, `four cells in | ${cells.join(' | ')} |`);
    const name = ticked(cells[0]!);
    assert.ok(name !== undefined, `the first cell is a name in backticks: ${cells[0]}`);
    assert.match(cells[1]!, /^\d{4}$/, `number of ${name}`);
    return [name, Number(cells[1])] as const;
  });
  assert.deepEqual(new Map(rows), new Map(Object.entries(CloseCode)));
  assert.equal(rows.length, Object.keys(CloseCode).length, 'each close code once');
});

test('errors doc - every close code an error maps to is in the close code table', () => {
  const listed = new Set<number>(Object.values(CloseCode));
  for (const row of errorRows()) {
    if (row.close !== undefined) assert.ok(listed.has(row.close), `${row.code} closes with ${row.close}`);
  }
});
