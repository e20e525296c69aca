/**
 * `spike completion bash|zsh|fish`: a completion script generated from the
 * command tree itself, so it never falls behind the commands. Every shell
 * gets the same table (command path → subcommands and options) and the same
 * rule to find where the cursor is: the longest run of words that names a
 * command, options skipped.
 */
import type { Command, Option } from 'commander';
import type { CommandContext } from './_context.ts';

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

interface Word {
  readonly word: string;
  readonly description: string;
}

interface OptionInfo {
  readonly long: string | undefined;
  readonly short: string | undefined;
  readonly description: string;
  /** Whether a value follows the flag. */
  readonly takesValue: boolean;
  readonly choices: readonly string[];
}

interface Node {
  /** Command names from the top, space-separated; '' for `spike` itself. */
  readonly path: string;
  readonly subcommands: readonly Word[];
  /** The fixed values of its arguments (`completion <shell>`). */
  readonly values: readonly string[];
  readonly options: readonly OptionInfo[];
}

const HELP_OPTION: OptionInfo = {
  long: '--help',
  short: '-h',
  description: 'display help for command',
  takesValue: false,
  choices: [],
};

function optionInfo(option: Option): OptionInfo {
  return {
    long: option.long,
    short: option.short,
    description: option.description,
    takesValue: option.required || option.optional,
    choices: option.argChoices ?? [],
  };
}

function collect(command: Command, path: string, into: Node[]): void {
  into.push({
    path,
    subcommands: command.commands.map((sub) => ({
      word: sub.name(),
      description: sub.description(),
    })),
    values: command.registeredArguments.flatMap((argument) => argument.argChoices ?? []),
    options: [...command.options.map(optionInfo), HELP_OPTION],
  });
  for (const sub of command.commands) {
    collect(sub, path === '' ? sub.name() : `${path} ${sub.name()}`, into);
  }
}

function commandTable(program: Command): Node[] {
  const nodes: Node[] = [];
  collect(program, '', nodes);
  return nodes;
}

function flagsOf(option: OptionInfo): string[] {
  return [option.long, option.short].filter((flag): flag is string => flag !== undefined);
}

/** Each shell's own single quotes around any text. */
function bashQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
function fishQuote(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

export function renderCompletion(program: Command, shell: CompletionShell): string {
  const nodes = commandTable(program);
  switch (shell) {
    case 'bash':
      return renderBash(nodes);
    case 'zsh':
      return renderZsh(nodes);
    case 'fish':
      return renderFish(nodes);
  }
}

/** The known command paths, each between spaces, words joined by ':'. */
function knownPaths(nodes: readonly Node[]): string {
  const paths = nodes.map((node) => node.path.replaceAll(' ', ':')).filter((path) => path !== '');
  return ` ${paths.join(' ')} `;
}

function renderBash(nodes: readonly Node[]): string {
  const cases = nodes.map((node) => {
    const words = [
      ...node.subcommands.map((sub) => sub.word),
      ...node.values,
      ...node.options.flatMap(flagsOf),
    ];
    return `    ${bashQuote(node.path)}) words=${bashQuote(words.join(' '))} ;;`;
  });
  const valueCases = valueOptions(nodes).map(
    ({ flags, choices }) =>
      `      ${flags.join('|')}) COMPREPLY=($(compgen -W ${bashQuote(choices.join(' '))} -- "$cur")); return ;;`,
  );
  return `# bash completion for spike; load with: source <(spike completion bash)
_spike_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" word candidate i
  local known=${bashQuote(knownPaths(nodes))}
  if ((COMP_CWORD > 0)); then prev="\${COMP_WORDS[COMP_CWORD - 1]}"; fi
  case "$prev" in
${valueCases.join('\n')}
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    candidate="\${cmd:+\${cmd}:}\${word}"
    if [[ "$word" != -* && "$known" == *" $candidate "* ]]; then
      cmd="$candidate"
    fi
  done
  local words=""
  case "\${cmd//:/ }" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _spike_complete spike
`;
}

/** Options with a fixed set of values (`--format`), whichever command has them. */
function valueOptions(
  nodes: readonly Node[],
): { readonly flags: string[]; readonly choices: readonly string[] }[] {
  const seen = new Map<string, { flags: string[]; choices: readonly string[] }>();
  for (const node of nodes) {
    for (const option of node.options) {
      if (option.choices.length === 0) continue;
      const flags = flagsOf(option);
      seen.set(flags.join('|'), { flags, choices: option.choices });
    }
  }
  return [...seen.values()];
}

function renderZsh(nodes: readonly Node[]): string {
  // _describe wants "word:description"; a colon inside the word is escaped.
  const entry = (word: string, description: string) =>
    bashQuote(`${word.replaceAll(':', '\\:')}:${description}`);
  const cases = nodes.map((node) => {
    const entries = [
      ...node.subcommands.map((sub) => entry(sub.word, sub.description)),
      ...node.values.map((value) => entry(value, value)),
      ...node.options.flatMap((option) =>
        flagsOf(option).map((flag) => entry(flag, option.description)),
      ),
    ];
    return `    ${bashQuote(node.path)}) candidates=(${entries.join(' ')}) ;;`;
  });
  const valueCases = valueOptions(nodes).map(
    ({ flags, choices }) =>
      `    ${flags.join('|')}) compadd -- ${choices.map(bashQuote).join(' ')}; return ;;`,
  );
  return `#compdef spike
# zsh completion for spike: put it in a folder of $fpath as _spike, or load it
# with: source <(spike completion zsh) (after compinit)
_spike() {
  local cmd="" word candidate i
  local known=${bashQuote(knownPaths(nodes))}
  local -a candidates
  case "\${words[CURRENT-1]}" in
${valueCases.join('\n')}
  esac
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    candidate="\${cmd:+\${cmd}:}\${word}"
    if [[ "$word" != -* && "$known" == *" $candidate "* ]]; then
      cmd="$candidate"
    fi
  done
  case "\${cmd//:/ }" in
${cases.join('\n')}
  esac
  _describe -t spike 'spike' candidates
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _spike "$@"
else
  compdef _spike spike
fi
`;
}

function renderFish(nodes: readonly Node[]): string {
  const known = nodes
    .map((node) => node.path)
    .filter((path) => path !== '')
    .map(fishQuote);
  const lines: string[] = [];
  for (const node of nodes) {
    const at = `-n ${fishQuote(`__spike_at ${fishQuote(node.path)}`)}`;
    for (const sub of node.subcommands) {
      lines.push(
        `complete -c spike ${at} -a ${fishQuote(sub.word)} -d ${fishQuote(sub.description)}`,
      );
    }
    for (const value of node.values) {
      lines.push(`complete -c spike ${at} -a ${fishQuote(value)}`);
    }
    for (const option of node.options) {
      const flags = [
        option.long === undefined ? '' : ` -l ${option.long.slice(2)}`,
        option.short === undefined ? '' : ` -s ${option.short.slice(1)}`,
      ].join('');
      const value =
        option.choices.length > 0
          ? ` -x -a ${fishQuote(option.choices.join(' '))}`
          : option.takesValue
            ? ' -r -F'
            : '';
      lines.push(`complete -c spike ${at}${flags}${value} -d ${fishQuote(option.description)}`);
    }
  }
  return `# fish completion for spike: save as ~/.config/fish/completions/spike.fish, or
# load it with: spike completion fish | source
function __spike_path --description 'The spike command the cursor is in'
    set -l known ${known.join(' ')}
    set -l cmd ''
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        set -l candidate (string trim -- "$cmd $word")
        contains -- $candidate $known; and set cmd $candidate
    end
    echo $cmd
end
function __spike_at --description 'Whether the cursor is in this spike command'
    set -l cmd (__spike_path)
    test "$cmd" = "$argv[1]"
end
complete -c spike -f
${lines.join('\n')}
`;
}

/** `spike completion <shell>`, the shell one of COMPLETION_SHELLS. */
export function registerCompletionCommand(program: Command, context: CommandContext): void {
  program
    .command('completion')
    .description(`Print a shell completion script: ${COMPLETION_SHELLS.join(', ')}`)
    .addArgument(
      program.createArgument('<shell>', 'the shell to complete for').choices(COMPLETION_SHELLS),
    )
    .action((shell: CompletionShell) => {
      // Commander has checked the choice.
      context.output.stdout(renderCompletion(program, shell));
    });
}
