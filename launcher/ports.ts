/**
 * The ports spike-local will give its children, checked before any child
 * starts: each is listened on for a moment and closed again. A port that
 * another program holds is reported with the variable that moves it, all of
 * them at once, instead of as a Keeper or Nexus that dies in its log after
 * the agent has started. (A program can still take a port between this
 * check and the child's start; the child's failure then says so.)
 */
import { type AddressInfo, createServer, type Server } from 'node:net';
import { ENV_LOCAL_KEEPER_PORTS, ENV_LOCAL_NEXUS_PORT, type LauncherConfig } from './config.ts';

/** Where the children listen (launcher.ts gives them this host). */
export const LOCAL_HOST = '127.0.0.1';

export interface PlannedPort {
  readonly port: number;
  /** Who takes it, for the message: `Nexus`, `Keeper 2`. */
  readonly owner: string;
  /** The variable that changes it. */
  readonly variable: string;
}

/** Nexus's port, then each Keeper's, with the variable that sets each. */
export function plannedPorts(config: LauncherConfig): PlannedPort[] {
  return [
    { port: config.nexusPort, owner: 'Nexus', variable: ENV_LOCAL_NEXUS_PORT },
    ...config.keeperPorts.map((port, i) => ({
      port,
      owner: `Keeper ${i + 1}`,
      variable: ENV_LOCAL_KEEPER_PORTS,
    })),
  ];
}

/** Throws one Error listing every port that cannot be listened on, with what to change. */
export async function checkPortsFree(ports: readonly PlannedPort[]): Promise<void> {
  const problems: string[] = [];
  for (const planned of ports) {
    const code = await tryListen(planned.port);
    if (code === undefined) continue;
    const change =
      planned.variable === ENV_LOCAL_KEEPER_PORTS
        ? `set ${planned.variable} to three other ports`
        : `set ${planned.variable} to another port`;
    problems.push(
      code === 'EADDRINUSE'
        ? `Port ${planned.port} (${planned.owner}) is in use; ${change}`
        : `Port ${planned.port} (${planned.owner}) cannot be listened on (${code}); ${change}`,
    );
  }
  if (problems.length > 0) {
    throw new Error(problems.join('\n'));
  }
}

/** Listens on the port and closes it again; the error code when that fails. */
function tryListen(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: Error) => {
      const { code } = err as { code?: unknown };
      resolve(typeof code === 'string' ? code : err.message);
    });
    server.listen({ host: LOCAL_HOST, port, exclusive: true }, () => {
      server.close(() => resolve(undefined));
    });
  });
}

/**
 * `count` distinct ports the system reports free on the children's address,
 * none of them in `taken`, for the children's operations listeners. They are
 * held together while picked, so they differ, then closed for the children
 * to take (a program could take one in between; that child's failure then
 * says so).
 */
export async function pickFreePorts(count: number, taken: readonly number[]): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      held.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: LOCAL_HOST, port: 0, exclusive: true }, () => {
          resolve((server.address() as AddressInfo).port);
        });
      });
      if (!taken.includes(port)) ports.push(port);
    }
  } finally {
    await Promise.all(
      held.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }
  return ports;
}
