import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import { loadLauncherConfig } from './config.ts';
import { checkPortsFree, LOCAL_HOST, pickFreePorts, plannedPorts } from './ports.ts';

/** Listens on a port the system picks, on the children's address. */
async function holdAny(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: LOCAL_HOST, port: 0 }, resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

function closed(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('plannedPorts()', () => {
  test('names Nexus and each Keeper with the variable that moves it', () => {
    const config = loadLauncherConfig({ HOME: '/home/alice' });
    assert.deepEqual(plannedPorts(config), [
      { port: 8553, owner: 'Nexus', variable: 'SPIKE_NEXUS_TLS_PORT' },
      { port: 8443, owner: 'Keeper 1', variable: 'SPIKE_LOCAL_KEEPER_PORTS' },
      { port: 8444, owner: 'Keeper 2', variable: 'SPIKE_LOCAL_KEEPER_PORTS' },
      { port: 8445, owner: 'Keeper 3', variable: 'SPIKE_LOCAL_KEEPER_PORTS' },
    ]);
  });
});

describe('checkPortsFree()', () => {
  test('passes free ports and leaves them free', async () => {
    const { server, port } = await holdAny();
    await closed(server);
    const planned = [{ port, owner: 'Nexus', variable: 'SPIKE_NEXUS_TLS_PORT' }];
    await checkPortsFree(planned);
    // Closed again: the same check passes twice.
    await checkPortsFree(planned);
  });

  test('names every port in use and the variable that moves it', async () => {
    const nexus = await holdAny();
    const keeper = await holdAny();
    try {
      await assert.rejects(
        checkPortsFree([
          { port: nexus.port, owner: 'Nexus', variable: 'SPIKE_NEXUS_TLS_PORT' },
          { port: keeper.port, owner: 'Keeper 3', variable: 'SPIKE_LOCAL_KEEPER_PORTS' },
        ]),
        (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.equal(
            err.message,
            [
              `Port ${nexus.port} (Nexus) is in use; set SPIKE_NEXUS_TLS_PORT to another port`,
              `Port ${keeper.port} (Keeper 3) is in use; set SPIKE_LOCAL_KEEPER_PORTS to three other ports`,
            ].join('\n'),
          );
          return true;
        },
      );
    } finally {
      await closed(nexus.server);
      await closed(keeper.server);
    }
  });
});

describe('pickFreePorts()', () => {
  test('gives distinct ports that can be listened on, none of those taken', async () => {
    const { server, port: taken } = await holdAny();
    try {
      const ports = await pickFreePorts(4, [taken]);
      assert.equal(ports.length, 4);
      assert.equal(new Set(ports).size, 4);
      assert.ok(!ports.includes(taken));
      await checkPortsFree(ports.map((port) => ({ port, owner: 'test', variable: 'X' })));
    } finally {
      await closed(server);
    }
  });
});
