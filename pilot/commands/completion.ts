/**
 * `spike completion`: a bash completion script generated from the command
 * tree itself, so it never falls behind the commands.
 */
import type { Command } from 'commander';

interface Node {
  readonly path: string;
  readonly words: readonly string[];
}

function collect(command: Command, path: string, into: Node[]): void {
  const subcommands = command.commands.map((sub) => sub.name());
  const options = command.options.flatMap((option) =>
    [option.long, option.short].filter((flag): flag is string => flag !== undefined),
  );
  into.push({ path, words: [...subcommands, ...options, '--help'] });
  for (const sub of command.commands) {
    collect(sub, path === '' ? sub.name() : `${path} ${sub.name()}`, into);
  }
}

export function renderCompletion(program: Command): string {
  const nodes: Node[] = [];
  collect(program, '', nodes);
  const known = nodes.map((node) => node.path).filter((path) => path !== '');
  const cases = nodes
    .map((node) => `    "${node.path}") words="${node.words.join(' ')}" ;;`)
    .join('\n');
  return `# bash completion for spike; load with: source <(spike completion)
_spike_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" word candidate i
  local known=" ${known.map((path) => path.replaceAll(' ', ':')).join(' ')} "
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    candidate="\${path:+\${path}:}\${word}"
    if [[ "$word" != -* && "$known" == *" $candidate "* ]]; then
      path="$candidate"
    fi
  done
  local words=""
  case "\${path//:/ }" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _spike_complete spike
`;
}
