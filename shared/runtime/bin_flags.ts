/**
 * The Node flags a program's bin entry gives itself on its shebang line
 * (`#!/usr/bin/env -S node <flags>`). Whoever starts a bin as
 * `node <flags> bin/<name>.js` (the local broker's launcher, the test
 * harness) reads them here, so the program runs as it does when started
 * from its bin, where the kernel reads the same line.
 */
import { readFileSync } from 'node:fs';

const PLAIN = '#!/usr/bin/env node';
const WITH_FLAGS = '#!/usr/bin/env -S node ';

/** The flags on the first line of the bin file at `path`; throws if that line is not one of the two forms. */
export function nodeFlagsOfBin(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const end = text.indexOf('\n');
  return nodeFlagsOfShebang(end === -1 ? text : text.slice(0, end));
}

/** The flags of one shebang line; see `nodeFlagsOfBin`. */
export function nodeFlagsOfShebang(line: string): string[] {
  if (line === PLAIN) {
    return [];
  }
  if (line.startsWith(WITH_FLAGS)) {
    const flags = line.slice(WITH_FLAGS.length).split(' ');
    if (flags.every((flag) => /^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/.test(flag))) {
      return flags;
    }
  }
  throw new Error(`Not a bin's shebang line: ${JSON.stringify(line)}`);
}
