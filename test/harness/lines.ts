/**
 * The whole lines of a file or stream another process is still writing.
 *
 * A reader can catch a write half done (a batch of audit lines is one write,
 * and a pipe delivers it in chunks), so the text after the last newline may be
 * a line cut short. It is left for the next read, which sees it whole.
 */
export function completeLines(text: string): string[] {
  const end = text.lastIndexOf('\n');
  if (end < 0) return [];
  return text
    .slice(0, end)
    .split('\n')
    .filter((line) => line !== '');
}
