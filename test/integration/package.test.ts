/**
 * What users install (issue 17, docs/decisions/0030-packaging.md): the npm
 * package made by `npm pack`, installed into an empty project, and the
 * container image made from that same tarball.
 *
 * The package is packed in a scratch copy of the checkout (its own `dist/`,
 * the checkout's `node_modules/` linked), so that `prepack` never rebuilds
 * the `dist/` that other test files may be starting programs from. The
 * consumer project gets the tarball and its dependencies from npm as a user
 * would (from npm's cache when CI's `npm ci` has filled it), and no tsx.
 *
 * The image part needs rootful podman (scripts/podman.sh): without it, it
 * skips and says why, unless SPIKE_TEST_REQUIRE_PODMAN=1 (CI as root), where
 * a missing podman fails. Everything here is for Node; Deno skips the file.
 */
import assert from 'node:assert/strict';
import { type ExecFileSyncOptions, execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../../shared/api/version.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { type Broker, startBroker } from '../harness/broker.ts';
import { currentRuntime, freePort, ROOT, runProgram } from '../harness/spawn.ts';

const BINS = ['spike', 'spike-nexus', 'spike-keeper', 'spike-agent', 'spike-local'];
const onDeno = currentRuntime() === 'deno' && 'the package and the image are for Node';

/** Top-level entries of the checkout that a fresh clone does not have, or that the copy links. */
const NOT_COPIED = new Set([
  'node_modules',
  '.tools',
  '.git',
  'dist',
  'dist.tmp',
  'scratch',
  '.data',
]);

/** The environment of a child npm: none of the `npm_*` variables of an `npm test` around us. */
function npmEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('npm_')) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs a command, returns its stdout; a failure carries its stderr. */
function run(file: string, args: readonly string[], options: ExecFileSyncOptions = {}): string {
  try {
    return execFileSync(file, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      ...options,
    }) as string;
  } catch (err) {
    const { stderr, stdout } = err as { stderr?: Buffer | string; stdout?: Buffer | string };
    throw new Error(
      `${file} ${args.join(' ')} failed:\n${String(stdout ?? '')}\n${String(stderr ?? '')}`,
    );
  }
}

/** The version of a package installed in the checkout, so the consumer gets the same one from npm's cache. */
function installedVersion(name: string): string {
  const manifest = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
  );
  return (manifest as { version: string }).version;
}

/** Packs the checkout in a scratch copy and installs the tarball into an empty project. */
function packAndInstall(scratch: string): { tarball: string; project: string } {
  const copy = join(scratch, 'checkout');
  cpSync(ROOT, copy, {
    recursive: true,
    filter: (source) => {
      const [top = '', second] = relative(ROOT, source).split('/');
      if (NOT_COPIED.has(top) || top.startsWith('.bundles-test-')) return false;
      return !(top === 'bench' && second === 'results');
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  const name = run('npm', ['pack', '--silent', '--pack-destination', scratch], {
    cwd: copy,
    env: npmEnv(),
  }).trim();
  const tarball = join(scratch, name);
  const project = join(scratch, 'project');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`,
  );
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
      tarball,
      `typescript@${installedVersion('typescript')}`,
      `@types/node@${installedVersion('@types/node')}`,
    ],
    { cwd: project, env: npmEnv() },
  );
  return { tarball, project };
}

// ---------------------------------------------------------------------------
// The container image

const CONTAINERS_CONF = process.env.CONTAINERS_CONF ?? join(ROOT, 'scripts/containers.conf');
/** The image's user (Containerfile). */
const IMAGE_UID = 10001;

/** Why the image tests cannot run here, or undefined when they can. */
function podmanMissing(): string | undefined {
  if (onDeno) return onDeno;
  if (process.getuid?.() !== 0) return 'the image test runs rootful podman: run it as root';
  const probe = spawnSync('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], {
    encoding: 'utf8',
    env: { ...process.env, CONTAINERS_CONF },
  });
  if (probe.error !== undefined || probe.status !== 0) {
    return `podman cannot run here (${probe.error?.message ?? probe.stderr.trim()}); see scripts/podman.sh`;
  }
  return undefined;
}

// The reason shows in the test report as the suite's skip reason.
const missing = podmanMissing();
if (missing !== undefined && process.env.SPIKE_TEST_REQUIRE_PODMAN === '1' && !onDeno) {
  throw new Error(`SPIKE_TEST_REQUIRE_PODMAN=1 but ${missing}`);
}

function podman(args: readonly string[]): string {
  return run('podman', args, { env: { ...process.env, CONTAINERS_CONF } }).trim();
}

/** Polls an operations listener's /ready until it answers 200. */
async function waitReady(port: number, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const reply = await fetch(`http://127.0.0.1:${port}/ready`);
      await reply.body?.cancel();
      if (reply.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() >= deadline) throw new Error(`${what} was not ready within ${timeoutMs} ms`);
    await delay(100);
  }
}

describe('what users install', { skip: onDeno }, () => {
  let scratch = '';
  let tarball = '';
  let project = '';

  before(() => {
    if (onDeno) return;
    scratch = mkdtempSync(join(tmpdir(), 'spike-package-'));
    ({ tarball, project } = packAndInstall(scratch));
  });

  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  describe('the npm package', () => {
    let broker: Broker | undefined;

    after(async () => {
      await broker?.stop();
    });

    test('the tarball holds the bins, the program bundles, the compiled SDK with its declarations and the license, and no test, no .ts source, no build stamp', () => {
      const files = run('tar', ['-tzf', tarball])
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.replace(/^package\//, ''));
      for (const bin of BINS) {
        assert.ok(files.includes(`bin/${bin}.js`), `bin/${bin}.js`);
        assert.ok(files.includes(`dist/${bin}.js`), `dist/${bin}.js`);
      }
      assert.ok(files.includes('dist/sdk/index.js'));
      assert.ok(files.includes('dist/sdk/types/sdk/index.d.ts'));
      assert.ok(files.includes('dist/nexus/store/sqlite/migrations/meta/_journal.json'));
      assert.ok(files.includes('package.json') && files.includes('README.md'));
      assert.ok(files.includes('LICENSE'), 'the license text the package declares');
      const sources = files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));
      assert.deepEqual(sources, [], 'no TypeScript source is shipped');
      assert.deepEqual(
        files.filter((file) => /(^|\/)test\/|\.test\./.test(file)),
        [],
        'no test is shipped',
      );
      assert.ok(!files.includes('dist/build-stamp.json'));
    });

    test('the package exports the SDK as JavaScript with types, and publishes only what it packs', () => {
      const manifest = JSON.parse(
        readFileSync(join(project, 'node_modules/spike-ts/package.json'), 'utf8'),
      ) as { exports: Record<string, unknown>; bin: Record<string, string>; private?: boolean };
      assert.deepEqual(manifest.exports['./sdk'], {
        types: './dist/sdk/types/sdk/index.d.ts',
        import: './dist/sdk/index.js',
      });
      assert.deepEqual(Object.keys(manifest.bin).sort(), [...BINS].sort());
      assert.equal(manifest.private, undefined);
    });

    test('the SDK stands alone: its bundle holds the SDK and the shared modules it uses, no server code, and imports only its client packages', () => {
      const text = readFileSync(join(project, 'node_modules/spike-ts/dist/sdk/index.js'), 'utf8');
      // esbuild writes a `// <source path>` comment before each module it bundles.
      const modules = [
        ...text.matchAll(/^\/\/ ((?:sdk|shared|nexus|keeper|agent|pilot|launcher)\/\S+\.ts)$/gm),
      ].map((match) => match[1] as string);
      assert.ok(
        modules.includes('sdk/client.ts') && modules.includes('shared/spiffe/x509_source.ts'),
      );
      // shared/crypto/base64.ts: the named keys' wire form.
      const server = modules.filter(
        (path) =>
          !/^(sdk|shared\/(api|errors|spiffe|runtime))\//.test(path) &&
          path !== 'shared/crypto/base64.ts',
      );
      assert.deepEqual(server, [], 'modules outside the SDK and its shared code');
      const imported = new Set(
        [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)";/gms)].map(
          (match) => match[1] as string,
        ),
      );
      const packages = [...imported].filter((name) => !name.startsWith('node:')).sort();
      assert.deepEqual(packages, [
        '@grpc/grpc-js',
        '@peculiar/asn1-schema',
        '@peculiar/asn1-x509',
        'protobufjs/light.js',
      ]);
    });

    test('every bin runs from the installed package, without tsx', () => {
      assert.ok(!existsSync(join(project, 'node_modules/tsx')), 'tsx is not installed for users');
      const bin = (name: string) => join(project, 'node_modules/.bin', name);
      const version = spawnSync(bin('spike'), ['--version'], { encoding: 'utf8' });
      assert.equal(version.status, 0, version.stderr);
      assert.equal(version.stdout.trim(), VERSION);
      // The servers validate their configuration first: a bad value is exit 2
      // with the program's own message, so each bundle loaded and ran.
      const refused: Record<string, Record<string, string>> = {
        'spike-nexus': { SPIKE_NEXUS_TLS_PORT: '70000' },
        'spike-keeper': { SPIKE_KEEPER_TLS_PORT: '70000' },
        'spike-agent': { SPIKE_AGENT_SVID_TTL: 'soon' },
        'spike-local': { SPIKE_LOCAL_KEEPER_PORTS: '1' },
      };
      for (const [name, env] of Object.entries(refused)) {
        const result = spawnSync(bin(name), [], {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env },
          timeout: 30_000,
        });
        assert.equal(result.status, 2, `${name}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`^${name}: Invalid configuration`, 'm'), name);
      }
    });

    test('plain node imports the SDK from the package', () => {
      writeFileSync(
        join(project, 'app.mjs'),
        [
          "import { createSpikeClient, NotFoundError, parseSpiffeId } from 'spike-ts/sdk';",
          "const id = parseSpiffeId('spiffe://example.org/apps/web');",
          "console.log(typeof createSpikeClient, id.trustDomain.name, new NotFoundError('x').code);",
        ].join('\n'),
      );
      const result = spawnSync(process.execPath, ['app.mjs'], { cwd: project, encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'function example.org ERR_NOT_FOUND');
    });

    test('a strict NodeNext TypeScript project type-checks against the declarations, which catch a misuse', () => {
      const tsconfig = {
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files: ['consumer.ts'],
      };
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
      const good = [
        "import { createSpikeClient, NotFoundError, type SpikeClient } from 'spike-ts/sdk';",
        'export async function password(path: string): Promise<string | undefined> {',
        "  const client: SpikeClient = await createSpikeClient({ workloadApiAddress: 'unix:///run/spire/agent.sock' });",
        '  try {',
        '    const secret = await client.getSecret(path);',
        '    return secret.data.password;',
        '  } catch (err) {',
        '    if (err instanceof NotFoundError) return undefined;',
        '    throw err;',
        '  } finally {',
        '    client.close();',
        '  }',
        '}',
        '',
      ].join('\n');
      const tsc = join(project, 'node_modules/typescript/bin/tsc');
      writeFileSync(join(project, 'consumer.ts'), good);
      const ok = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], {
        cwd: project,
        encoding: 'utf8',
      });
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      writeFileSync(
        join(project, 'consumer.ts'),
        `${good}export const wrong: number = (await createSpikeClient({ nexusUrl: 8553 })).spiffeId();\n`,
      );
      const bad = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], {
        cwd: project,
        encoding: 'utf8',
      });
      assert.notEqual(bad.status, 0);
      assert.match(bad.stdout, /consumer\.ts\(14,/);
    });

    test('a broker started from the installed bins serves spike secret put and get', async () => {
      const bins = join(project, 'node_modules/spike-ts/bin');
      broker = await startBroker({ trustDomain: 'package.test', bundles: bins });
      const env = {
        ...broker.identityEnv('pilot'),
        SPIKE_NEXUS_API_URL: broker.nexusUrl,
        SPIKE_PILOT_TIMEOUT: '10s',
      };
      const value = broker.secretValue('package');
      const put = await runProgram('pilot', {
        bundles: bins,
        env,
        args: ['secret', 'put', 'package/one', `value=${value}`],
      });
      assert.equal(put.status, 0, put.stderr);
      const get = await runProgram('pilot', {
        bundles: bins,
        env,
        args: ['secret', 'get', 'package/one', '--format', 'json'],
      });
      assert.equal(get.status, 0, get.stderr);
      assert.equal((JSON.parse(get.stdout) as { data: Record<string, string> }).data.value, value);
    });
  });

  describe('the SDK on JSR', () => {
    test('deno.json names, versions and exports the SDK, and deno publish --dry-run passes', () => {
      const deno = JSON.parse(readFileSync(join(ROOT, 'deno.json'), 'utf8')) as {
        name: string;
        version: string;
        exports: Record<string, string>;
      };
      assert.equal(deno.version, VERSION);
      assert.match(deno.name, /^@[a-z0-9-]+\/[a-z0-9-]+$/);
      assert.deepEqual(deno.exports, { '.': './sdk/index.ts' });
      run('bash', [join(ROOT, 'scripts/tools.sh')]);
      const result = spawnSync(
        join(ROOT, '.tools/node_modules/.bin/deno'),
        ['publish', '--dry-run', '--allow-dirty'],
        { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
      );
      assert.equal(result.status, 0, result.stdout + result.stderr);
      // Deno lists the files it would publish: the SDK and the shared code it uses.
      const prefix = `file://${ROOT}/`;
      const published = result.stderr
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.startsWith(prefix))
        .map((line) => line.slice(prefix.length).split(' ')[0] as string);
      assert.ok(published.includes('sdk/index.ts') && published.includes('sdk/client.ts'));
      const outside = published.filter(
        (file) =>
          file !== 'deno.json' &&
          file !== 'shared/crypto/base64.ts' &&
          !/^(sdk|shared\/(api|errors|spiffe|runtime|log))\//.test(file),
      );
      assert.deepEqual(outside, [], 'files outside the SDK and its shared code');
      assert.ok(!published.some((file) => file.endsWith('.test.ts')), 'no test is published');
    });
  });

  describe('the container image', { skip: missing }, () => {
    const suffix = `${process.pid}`;
    const image = `localhost/spike-ts:test-${suffix}`;
    const containers: string[] = [];
    let volumes = '';

    before(() => {
      const base = run('bash', [join(ROOT, 'scripts/base_image.sh')], {
        env: { ...process.env, CONTAINERS_CONF },
      }).trim();
      run(
        'bash',
        [join(ROOT, 'scripts/image.sh'), '--tarball', tarball, '--base', base, '--tag', image],
        { env: npmEnv({ CONTAINERS_CONF }) },
      );
      volumes = join(scratch, 'volumes');
      for (const dir of ['sockets', 'agent', 'nexus']) {
        mkdirSync(join(volumes, dir), { recursive: true });
        chownSync(join(volumes, dir), IMAGE_UID, IMAGE_UID);
        chmodSync(join(volumes, dir), 0o700);
      }
    });

    after(() => {
      for (const name of containers.reverse()) {
        spawnSync('podman', ['stop', '--time', '10', name], {
          env: { ...process.env, CONTAINERS_CONF },
        });
        spawnSync('podman', ['rm', '--force', '--volumes', name], {
          env: { ...process.env, CONTAINERS_CONF },
        });
      }
      spawnSync('podman', ['rmi', '--force', image], { env: { ...process.env, CONTAINERS_CONF } });
    });

    /** Starts a program of the image as a container on the host network. */
    function startContainer(
      name: string,
      command: readonly string[],
      env: Readonly<Record<string, string>>,
      mounts: readonly string[],
    ): void {
      const full = `spike-test-${name}-${suffix}`;
      const envArgs = Object.entries(env).flatMap(([key, value]) => ['--env', `${key}=${value}`]);
      const mountArgs = mounts.flatMap((mount) => ['--volume', mount]);
      podman([
        'run',
        '--detach',
        '--name',
        full,
        '--network',
        'host',
        ...envArgs,
        ...mountArgs,
        image,
        ...command,
      ]);
      containers.push(full);
    }

    function logsOf(): string {
      return containers
        .map(
          (name) =>
            `--- ${name}\n${spawnSync('podman', ['logs', name], { encoding: 'utf8', env: { ...process.env, CONTAINERS_CONF } }).stderr}`,
        )
        .join('\n');
    }

    test('the image runs as an unprivileged user, has no shell, and keeps data and sockets in volumes', () => {
      const config = JSON.parse(
        podman(['image', 'inspect', '--format', '{{json .Config}}', image]),
      ) as {
        User: string;
        Entrypoint?: string[] | null;
        Volumes: Record<string, unknown>;
      };
      assert.equal(config.User, `${IMAGE_UID}:${IMAGE_UID}`);
      assert.deepEqual(Object.keys(config.Volumes).sort(), ['/run/spike', '/var/lib/spike']);
      assert.deepEqual(config.Entrypoint ?? [], [], 'no entry point script');
      const shell = spawnSync('podman', ['run', '--rm', image, '/bin/sh', '-c', 'true'], {
        encoding: 'utf8',
        env: { ...process.env, CONTAINERS_CONF },
      });
      assert.notEqual(shell.status, 0, 'the test base has no shell, and the programs need none');
      assert.equal(podman(['run', '--rm', image, 'spike', '--version']), VERSION);
    });

    test('agent, three Keepers and Nexus as containers serve a secret that spike on the host writes and reads', async () => {
      const sockets = join(volumes, 'sockets');
      const agentOps = await freePort();
      startContainer('agent', ['spike-agent'], { SPIKE_AGENT_OPS_ADDR: `127.0.0.1:${agentOps}` }, [
        `${sockets}:/run/spike/sockets`,
        `${join(volumes, 'agent')}:/var/lib/spike/agent`,
      ]);
      await waitReady(agentOps, 'the agent').catch((err: Error) => {
        throw new Error(`${err.message}\n${logsOf()}`);
      });
      const keeperPorts = [await freePort(), await freePort(), await freePort()];
      const keeperOps: number[] = [];
      for (const [index, port] of keeperPorts.entries()) {
        const ops = await freePort();
        keeperOps.push(ops);
        startContainer(
          `keeper-${index + 1}`,
          ['spike-keeper'],
          {
            SPIFFE_ENDPOINT_SOCKET: `unix:///run/spike/sockets/keeper-${index + 1}.sock`,
            SPIKE_KEEPER_TLS_HOST: '127.0.0.1',
            SPIKE_KEEPER_TLS_PORT: String(port),
            SPIKE_KEEPER_OPS_ADDR: `127.0.0.1:${ops}`,
          },
          [`${sockets}:/run/spike/sockets`],
        );
      }
      const nexusPort = await freePort();
      const nexusOps = await freePort();
      startContainer(
        'nexus',
        ['spike-nexus'],
        {
          SPIFFE_ENDPOINT_SOCKET: 'unix:///run/spike/sockets/nexus.sock',
          SPIKE_NEXUS_TLS_HOST: '127.0.0.1',
          SPIKE_NEXUS_TLS_PORT: String(nexusPort),
          SPIKE_NEXUS_OPS_ADDR: `127.0.0.1:${nexusOps}`,
          SPIKE_NEXUS_KEEPER_PEERS: keeperPorts
            .map((port) => `https://127.0.0.1:${port}`)
            .join(','),
        },
        [`${sockets}:/run/spike/sockets`, `${join(volumes, 'nexus')}:/var/lib/spike/nexus`],
      );
      try {
        for (const [index, ops] of keeperOps.entries()) await waitReady(ops, `Keeper ${index + 1}`);
        await waitReady(nexusOps, 'Nexus');
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${logsOf()}`);
      }
      // The sockets the agent made in the volume belong to the image's user, 0600 each.
      const made = readdirSync(sockets)
        .filter((name) => name.endsWith('.sock'))
        .sort();
      assert.ok(made.includes('pilot.sock') && made.includes('nexus.sock'), made.join());
      const env = {
        SPIFFE_ENDPOINT_SOCKET: `unix://${join(sockets, 'pilot.sock')}`,
        SPIKE_NEXUS_API_URL: `https://127.0.0.1:${nexusPort}`,
        SPIKE_PILOT_TIMEOUT: '10s',
      };
      const value = `image-${process.pid}-${Date.now()}`;
      const put = await runProgram('pilot', {
        env,
        args: ['secret', 'put', 'image/db', `password=${value}`],
      });
      assert.equal(put.status, 0, put.stderr + logsOf());
      const get = await runProgram('pilot', {
        env,
        args: ['secret', 'get', 'image/db', '--format', 'json'],
      });
      assert.equal(get.status, 0, get.stderr);
      assert.equal(
        (JSON.parse(get.stdout) as { data: Record<string, string> }).data.password,
        value,
      );
      // Nexus's database is in its volume, written by the image's user.
      const database = join(volumes, 'nexus', 'spike.db');
      assert.ok(existsSync(database), 'spike.db in the volume');
    });
  });
});
