/**
 * The Node flags a program's bin entry gives itself on its shebang line
 * (`#!/usr/bin/env -S node <flags>`). Whoever starts a bin as
 * `node <flags> bin/<name>.js` (the local broker's launcher, the test
 * harness) reads them here, so the program runs as it does when started
 * from its bin, where the kernel reads the same line.
 */
import { readFileSync } from 'node:fs';

const WITH_FLAGS = '#!/usr/bin/env -S node ';
const FLAG = /^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/;

/** The flags on the first line of the bin file at `path` (see `nodeFlagsOfShebang`). */
export function nodeFlagsOfBin(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const end = text.indexOf('\n');
  return nodeFlagsOfShebang(end === -1 ? text : text.slice(0, end));
}

/**
 * The flags of one shebang line. A line of any other form (`#!/usr/bin/env
 * node`, a shebang a packager rewrote) gives none: the program still starts,
 * only without them. A flag that does not look like one makes the line
 * count as another form, so nothing odd reaches the command line.
 */
export function nodeFlagsOfShebang(line: string): string[] {
  const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (!trimmed.startsWith(WITH_FLAGS)) {
    return [];
  }
  const flags = trimmed.slice(WITH_FLAGS.length).split(' ');
  return flags.every((flag) => FLAG.test(flag)) ? flags : [];
}
