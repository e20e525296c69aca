/**
 * The deployment files (deploy/, docs/deploy/, ADR 0030) are checked as far
 * as a machine without systemd as PID 1 and without a cluster allows:
 *
 * - the systemd units pass `systemd-analyze verify` (with their ExecStart
 *   pointed at stand-ins in a scratch prefix: verify checks that the binary
 *   exists) with no warning at all, and carry their hardening options;
 * - every example environment (the units' env files, the containers' env in
 *   the manifests) is a valid configuration for its program, read by the
 *   program's own config loader;
 * - the Kubernetes manifests validate against the Kubernetes schemas (the
 *   kubernetes-models package, offline), and agree with each other: the
 *   Keeper IDs Nexus admits are the ones the ClusterSPIFFEIDs give the
 *   StatefulSet's pods, at the addresses of its headless Service; probes go
 *   to the operations listener; every registration selects its workload.
 *
 * systemd-analyze is skipped, with the reason, when it is missing, unless
 * SPIKE_TEST_REQUIRE_SYSTEMD_ANALYZE=1 (CI as root installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { loadAgentConfig } from '../../agent/config.ts';
import { loadKeeperConfig } from '../../keeper/config.ts';
import { loadNexusConfig } from '../../nexus/config.ts';
import { ROOT } from '../harness/spawn.ts';

const SYSTEMD = join(ROOT, 'deploy/systemd');
const KUBERNETES = join(ROOT, 'deploy/kubernetes');

/** An EnvironmentFile's variables (KEY=VALUE lines; # comments). */
function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const text = line.trim();
    if (text === '' || text.startsWith('#')) continue;
    const equals = text.indexOf('=');
    assert.ok(equals > 0, `${path}: not KEY=VALUE: ${text}`);
    env[text.slice(0, equals)] = text.slice(equals + 1);
  }
  return env;
}

function systemdAnalyzeMissing(): string | undefined {
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return undefined;
  const reason = 'systemd-analyze is not installed (Debian package systemd)';
  if (process.env.SPIKE_TEST_REQUIRE_SYSTEMD_ANALYZE === '1') {
    throw new Error(`SPIKE_TEST_REQUIRE_SYSTEMD_ANALYZE=1 but ${reason}`);
  }
  return reason;
}

describe('the systemd units', () => {
  const units = readdirSync(SYSTEMD).filter((name) => name.endsWith('.service'));
  let scratch = '';

  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  /** Copies the units into a scratch folder, ExecStart pointed at stand-in binaries there. */
  function prepare(): string {
    scratch = mkdtempSync(join(tmpdir(), 'spike-units-'));
    const bin = join(scratch, 'opt/spike/bin');
    mkdirSync(bin, { recursive: true });
    for (const name of ['spike-nexus', 'spike-keeper', 'spike-agent']) {
      writeFileSync(join(bin, name), '');
      chmodSync(join(bin, name), 0o755);
    }
    const dir = join(scratch, 'units');
    mkdirSync(dir);
    for (const unit of units) {
      const text = readFileSync(join(SYSTEMD, unit), 'utf8').replaceAll(
        '/opt/spike/',
        `${scratch}/opt/spike/`,
      );
      // A template is verified as one of its instances.
      writeFileSync(join(dir, unit.replace('@.service', '@1.service')), text);
    }
    return dir;
  }

  function verify(files: readonly string[]) {
    return spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
  }

  test('there is a unit for Nexus, a templated one for the Keepers, and one for the agent', () => {
    assert.deepEqual(units.sort(), [
      'spike-agent.service',
      'spike-keeper@.service',
      'spike-nexus.service',
    ]);
  });

  test('each unit runs unprivileged, hardened, from an EnvironmentFile', () => {
    for (const unit of units) {
      const text = readFileSync(join(SYSTEMD, unit), 'utf8');
      const lines = new Set(text.split('\n'));
      for (const line of [
        'User=spike',
        'NoNewPrivileges=yes',
        'CapabilityBoundingSet=',
        'ProtectSystem=strict',
        'ProtectHome=yes',
        'PrivateTmp=yes',
        'PrivateDevices=yes',
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
        'SystemCallFilter=@system-service',
        'UMask=0077',
        'RestartPreventExitStatus=2',
      ]) {
        assert.ok(lines.has(line), `${unit} lacks ${line}`);
      }
      assert.match(text, /^EnvironmentFile=\/etc\/spike\/\S+\.env$/m, unit);
      assert.match(text, /^ExecStart=\/opt\/spike\/bin\/spike-(nexus|keeper|agent)$/m, unit);
    }
    const keeper = readFileSync(join(SYSTEMD, 'spike-keeper@.service'), 'utf8');
    assert.match(keeper, /^EnvironmentFile=\/etc\/spike\/keeper-%i\.env$/m);
  });

  test('systemd-analyze verify accepts every unit without a warning, and warns about a typo', {
    skip: systemdAnalyzeMissing(),
  }, () => {
    const dir = prepare();
    const files = readdirSync(dir).map((name) => join(dir, name));
    const result = verify(files);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(result.stdout + result.stderr, '', 'no warning');
    // The check has teeth: a misspelt option is reported.
    const broken = join(dir, 'broken.service');
    writeFileSync(
      broken,
      readFileSync(join(dir, 'spike-nexus.service'), 'utf8').replace(
        'ProtectSystem=strict',
        'ProtectSytem=strict',
      ),
    );
    const typo = verify([broken]);
    assert.match(typo.stdout + typo.stderr, /Unknown key 'ProtectSytem'/);
  });

  test("each env file is a valid configuration for its program's own loader", () => {
    const agent = loadAgentConfig(readEnvFile(join(SYSTEMD, 'agent.env')));
    assert.equal(agent.socketDir, '/run/spike/sockets');
    const nexus = loadNexusConfig(readEnvFile(join(SYSTEMD, 'nexus.env')));
    assert.equal(nexus.keeperPeers.length, 3);
    for (const index of [1, 2, 3]) {
      const env = {
        ...readEnvFile(join(SYSTEMD, 'keeper.env')),
        ...readEnvFile(join(SYSTEMD, `keeper-${index}.env`)),
      };
      const keeper = loadKeeperConfig(env);
      // Keeper N listens where Nexus's N-th peer points, on the agent's keeper-N socket.
      assert.equal(String(keeper.listen.port), nexus.keeperPeers[index - 1]?.url.port);
      assert.equal(env.SPIFFE_ENDPOINT_SOCKET, `unix://${agent.socketDir}/keeper-${index}.sock`);
    }
  });
});

interface Manifest {
  readonly file: string;
  readonly doc: Record<string, unknown> & {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
    spec?: Record<string, unknown>;
  };
}

function manifests(): Manifest[] {
  const all: Manifest[] = [];
  for (const file of readdirSync(KUBERNETES)
    .filter((name) => name.endsWith('.yaml'))
    .sort()) {
    for (const document of parseAllDocuments(readFileSync(join(KUBERNETES, file), 'utf8'))) {
      assert.deepEqual(document.errors, [], file);
      all.push({ file, doc: document.toJS() as Manifest['doc'] });
    }
  }
  return all;
}

/** The kubernetes-models class of each built-in kind the manifests use. */
const MODEL_OF: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/** The fields of a ClusterSPIFFEID's spec (spire-controller-manager's v1alpha1) used or allowed here. */
const CLUSTER_SPIFFEID_FIELDS = new Set([
  'spiffeIDTemplate',
  'podSelector',
  'namespaceSelector',
  'workloadSelectorTemplates',
  'dnsNameTemplates',
  'className',
  'ttl',
  'jwtTtl',
  'federatesWith',
  'admin',
  'downstream',
  'autoPopulateDNSNames',
  'hint',
  'fallback',
]);

interface Container {
  name: string;
  command?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string } };
  }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
}

interface Workload {
  replicas: number;
  serviceName?: string;
  template: { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } };
}

describe('the Kubernetes manifests', () => {
  const all = manifests();
  const find = (kind: string, name: string) => {
    const found = all.find((entry) => entry.doc.kind === kind && entry.doc.metadata.name === name);
    assert.ok(found !== undefined, `${kind} ${name}`);
    return found.doc;
  };
  const secret = find('Secret', 'spike-postgres') as unknown as {
    stringData: Record<string, string>;
  };
  /** A container's environment as its program sees it (secret references resolved from the example Secret). */
  const envOf = (container: Container): Record<string, string> =>
    Object.fromEntries(
      (container.env ?? []).map((entry) => {
        const ref = entry.valueFrom?.secretKeyRef;
        const value = ref === undefined ? entry.value : secret.stringData[ref.key];
        assert.ok(value !== undefined, `${container.name}: ${entry.name}`);
        return [entry.name, value];
      }),
    );

  test('every built-in object validates against the Kubernetes schemas, and the rest are ClusterSPIFFEIDs', () => {
    const kinds = new Set<string>();
    for (const { file, doc } of all) {
      const key = `${doc.apiVersion}/${doc.kind}`;
      kinds.add(key);
      const Model = MODEL_OF[key];
      if (Model !== undefined) {
        assert.doesNotThrow(
          () => new Model(doc as never).validate(),
          `${file}: ${doc.kind} ${doc.metadata.name}`,
        );
        continue;
      }
      assert.equal(key, 'spire.spiffe.io/v1alpha1/ClusterSPIFFEID', `${file}: unexpected ${key}`);
      const spec = doc.spec ?? {};
      for (const field of Object.keys(spec)) {
        assert.ok(
          CLUSTER_SPIFFEID_FIELDS.has(field),
          `${file}: unknown ClusterSPIFFEID field ${field}`,
        );
      }
      assert.match(String(spec.spiffeIDTemplate), /^spiffe:\/\/\{\{ \.TrustDomain \}\}\/spike\//);
      assert.equal(doc.metadata.namespace, undefined, 'ClusterSPIFFEID is cluster-scoped');
    }
    for (const needed of [
      'apps/v1/Deployment',
      'apps/v1/StatefulSet',
      'v1/Service',
      'spire.spiffe.io/v1alpha1/ClusterSPIFFEID',
    ]) {
      assert.ok(kinds.has(needed), needed);
    }
    // The validator has teeth: a port given as text is refused.
    const broken = structuredClone(find('Deployment', 'spike-nexus')) as unknown as Record<
      string,
      never
    >;
    const nexusSpec = broken.spec as unknown as Workload;
    (
      nexusSpec.template.spec.containers[0]?.ports?.[0] as { containerPort: unknown }
    ).containerPort = 'mtls';
    assert.throws(() => new Deployment(broken as never).validate(), /containerPort/);
  });

  test("Nexus admits at each Keeper's address exactly the ID its ClusterSPIFFEID gives that StatefulSet pod", () => {
    const keepers = find('StatefulSet', 'spike-keeper').spec as unknown as Workload;
    const headless = find('Service', 'spike-keeper').spec as { clusterIP: string };
    assert.equal(headless.clusterIP, 'None');
    const nexusPod = (find('Deployment', 'spike-nexus').spec as unknown as Workload).template.spec;
    const nexusEnv = envOf(nexusPod.containers[0] as Container);
    const nexus = loadNexusConfig(nexusEnv);
    const keeperContainer = keepers.template.spec.containers[0] as Container;
    const keeperEnv = envOf(keeperContainer);
    const keeper = loadKeeperConfig(keeperEnv);
    const template = String(find('ClusterSPIFFEID', 'spike-keeper').spec?.spiffeIDTemplate);
    assert.equal(nexus.keeperPeers.length, keepers.replicas);
    assert.equal(nexusEnv.SPIKE_TRUST_ROOT, keeperEnv.SPIKE_TRUST_ROOT);
    for (const [index, peer] of nexus.keeperPeers.entries()) {
      const pod = `spike-keeper-${index}`;
      assert.equal(peer.url.hostname, `${pod}.${keepers.serviceName}.spike.svc.cluster.local`);
      assert.equal(peer.url.port, String(keeper.listen.port));
      const issued = template
        .replace('{{ .TrustDomain }}', String(nexusEnv.SPIKE_TRUST_ROOT))
        .replace('{{ .PodMeta.Name }}', pod);
      assert.equal(peer.id.toString(), issued);
    }
  });

  test('every registration selects its workload, and the probes ask the operations listener', () => {
    const pods: Record<string, Workload> = {
      'spike-nexus': find('Deployment', 'spike-nexus').spec as unknown as Workload,
      'spike-keeper': find('StatefulSet', 'spike-keeper').spec as unknown as Workload,
    };
    for (const [name, workload] of Object.entries(pods)) {
      const registration = find('ClusterSPIFFEID', name).spec as {
        podSelector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchLabels: Record<string, string> };
      };
      for (const [label, value] of Object.entries(registration.podSelector.matchLabels)) {
        assert.equal(workload.template.metadata.labels[label], value, `${name}: ${label}`);
      }
      assert.deepEqual(registration.namespaceSelector.matchLabels, {
        'kubernetes.io/metadata.name': 'spike',
      });
      const container = workload.template.spec.containers[0] as Container;
      assert.deepEqual(container.command, [name]);
      const env = envOf(container);
      const opsVariable = name === 'spike-nexus' ? 'SPIKE_NEXUS_OPS_ADDR' : 'SPIKE_KEEPER_OPS_ADDR';
      const opsPort = Number(String(env[opsVariable]).split(':').pop());
      const ops = container.ports?.find((port) => port.name === 'ops');
      assert.equal(ops?.containerPort, opsPort, name);
      assert.deepEqual(container.livenessProbe?.httpGet, { path: '/live', port: 'ops' });
      assert.deepEqual(container.readinessProbe?.httpGet, { path: '/ready', port: 'ops' });
    }
    const pilot = find('ClusterSPIFFEID', 'spike-pilot').spec as { spiffeIDTemplate: string };
    assert.equal(pilot.spiffeIDTemplate, 'spiffe://{{ .TrustDomain }}/spike/pilot/role/superuser');
  });
});
