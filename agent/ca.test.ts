import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, InternalError } from '../shared/errors/errors.ts';
import { createLogger, createMemorySink } from '../shared/log/logger.ts';
import { x509 } from '../shared/spiffe/_x509.ts';
import { X509Bundle, X509BundleSet } from '../shared/spiffe/bundle.ts';
import { parseSpiffeId, parseTrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { parseX509Svid, verifyX509Svid } from '../shared/spiffe/x509_svid.ts';
import { BACKDATE_MS, CA_CERT_FILE, CA_KEY_FILE, type LocalCa, loadOrCreateCa } from './ca.ts';

const TD = parseTrustDomain('example.org');
const DAY_MS = 86_400_000;

function newLogger() {
  const sink = createMemorySink();
  return { sink, logger: createLogger({ component: 'agent', level: 'debug', sink }) };
}

async function expectRefusal(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0] ?? '', pattern);
    return true;
  });
}

describe('loadOrCreateCa()', () => {
  let root: string;
  let counter = 0;
  const freshDir = () => join(root, `case-${++counter}`, 'data');

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-agent-ca-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('creates an owner-only data dir, a 0600 key and a self-signed trust-domain root', async () => {
    const dataDir = freshDir();
    const { logger, sink } = newLogger();
    const ca = await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger });

    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dataDir, CA_KEY_FILE))).mode & 0o777, 0o600);
    // The key file is a PKCS#8 P-256 key that belongs to the certificate.
    const key = createPrivateKey(await readFile(join(dataDir, CA_KEY_FILE), 'utf8'));
    assert.equal(key.asymmetricKeyType, 'ec');

    const certPem = await readFile(join(dataDir, CA_CERT_FILE), 'utf8');
    assert.equal(certPem, ca.certificatePem());
    const node = new X509Certificate(certPem);
    assert.ok(node.checkPrivateKey(key));
    assert.equal(node.ca, true);
    assert.equal(node.subjectAltName, 'URI:spiffe://example.org');
    assert.ok(node.checkIssued(node));
    assert.ok(node.verify(node.publicKey));
    assert.equal(node.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(new Uint8Array(node.raw), ca.certificateDer());

    const cert = new x509.X509Certificate(certPem);
    const usage = cert.getExtension(x509.KeyUsagesExtension);
    assert.ok(usage?.critical);
    assert.equal(usage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    assert.ok(basic?.critical);
    assert.equal(basic?.ca, true);

    const lifetime = ca.notAfter.getTime() - ca.notBefore.getTime();
    assert.ok(Math.abs(lifetime - (DAY_MS + BACKDATE_MS)) <= 1000, `lifetime ${lifetime}`);
    assert.ok(sink.lines.some((l) => l.msg === 'Created a new trust domain CA'));
    assert.ok(!JSON.stringify(sink.lines).includes('PRIVATE KEY'));
  });

  test('loads the CA it created', async () => {
    const dataDir = freshDir();
    const first = await loadOrCreateCa({
      trustDomain: TD,
      dataDir,
      caTtlMs: DAY_MS,
      logger: newLogger().logger,
    });
    const { logger, sink } = newLogger();
    const second = await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger });
    assert.equal(second.serialNumber, first.serialNumber);
    assert.deepEqual(second.certificateDer(), first.certificateDer());
    assert.ok(sink.lines.some((l) => l.msg === 'Loaded the trust domain CA'));
    // The loaded key signs SVIDs that chain to the stored certificate.
    const svid = await second.issueSvid(parseSpiffeId('spiffe://example.org/w'), 60_000);
    const leaf = new X509Certificate(svid.certificateDer);
    assert.ok(leaf.verify(new X509Certificate(first.certificateDer()).publicKey));
  });

  test('refuses a key file that group or others can read', async () => {
    const dataDir = freshDir();
    await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger });
    const keyPath = join(dataDir, CA_KEY_FILE);
    await chmod(keyPath, 0o644);
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /has mode 0644; it must be readable and writable by its owner only\. Run: chmod 600/,
    );
    await chmod(keyPath, 0o640);
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /has mode 0640/,
    );
  });

  test('refuses a CA of another trust domain instead of replacing it', async () => {
    const dataDir = freshDir();
    await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger });
    const before = await readFile(join(dataDir, CA_CERT_FILE), 'utf8');
    await expectRefusal(
      loadOrCreateCa({
        trustDomain: parseTrustDomain('other.org'),
        dataDir,
        caTtlMs: DAY_MS,
        logger: newLogger().logger,
      }),
      /is for "spiffe:\/\/example\.org", not for trust domain "other\.org"/,
    );
    assert.equal(await readFile(join(dataDir, CA_CERT_FILE), 'utf8'), before);
  });

  test('refuses an expired CA', async () => {
    const dataDir = freshDir();
    const past = new Date(Date.now() - 10 * DAY_MS);
    await loadOrCreateCa({
      trustDomain: TD,
      dataDir,
      caTtlMs: DAY_MS,
      logger: newLogger().logger,
      now: () => past,
    });
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /expired at .*Delete/,
    );
  });

  test('refuses a key that does not belong to the certificate', async () => {
    const a = freshDir();
    const b = freshDir();
    await loadOrCreateCa({
      trustDomain: TD,
      dataDir: a,
      caTtlMs: DAY_MS,
      logger: newLogger().logger,
    });
    await loadOrCreateCa({
      trustDomain: TD,
      dataDir: b,
      caTtlMs: DAY_MS,
      logger: newLogger().logger,
    });
    await writeFile(join(a, CA_KEY_FILE), await readFile(join(b, CA_KEY_FILE)), { mode: 0o600 });
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir: a, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /does not belong to the certificate/,
    );
  });

  test('refuses a key file that is not a PKCS#8 PEM key', async () => {
    const dataDir = freshDir();
    await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger });
    await writeFile(join(dataDir, CA_KEY_FILE), 'not a key\n', { mode: 0o600 });
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /PRIVATE KEY/,
    );
  });

  test('refuses a half-present CA (key without certificate)', async () => {
    const dataDir = freshDir();
    await loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger });
    await rm(join(dataDir, CA_CERT_FILE));
    await expectRefusal(
      loadOrCreateCa({ trustDomain: TD, dataDir, caTtlMs: DAY_MS, logger: newLogger().logger }),
      /but not .*ca_cert\.pem/,
    );
  });
});

describe('LocalCa.issueSvid()', () => {
  let root: string;
  let ca: LocalCa;
  const { logger, sink } = newLogger();
  const id = parseSpiffeId('spiffe://example.org/spike/nexus');

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'spike-agent-svid-'));
    ca = await loadOrCreateCa({ trustDomain: TD, dataDir: root, caTtlMs: DAY_MS, logger });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('issues an X509-SVID that follows the SPIFFE profile', async () => {
    const start = Date.now();
    const svid = await ca.issueSvid(id, 3_600_000);
    const node = new X509Certificate(svid.certificateDer);
    assert.equal(node.subjectAltName, 'URI:spiffe://example.org/spike/nexus');
    assert.equal(node.subject, 'O=SPIKE');
    assert.equal(node.ca, false);
    assert.ok(node.verify(new X509Certificate(ca.certificateDer()).publicKey));

    const cert = new x509.X509Certificate(svid.certificateDer);
    const usage = cert.getExtension(x509.KeyUsagesExtension);
    assert.ok(usage?.critical);
    assert.equal(usage?.usages, x509.KeyUsageFlags.digitalSignature);
    // node:crypto's keyUsage means EKU on Node but basic usage on Deno, so
    // read both extensions from the ASN.1 instead.
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])].map(String).sort(), [
      '1.3.6.1.5.5.7.3.1',
      '1.3.6.1.5.5.7.3.2',
    ]);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    assert.equal(san?.names.items.length, 1);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.critical, true);

    // NotBefore is backdated about 10 s; X.509 times have whole seconds.
    const backdate = start - svid.notBefore.getTime();
    assert.ok(
      backdate >= BACKDATE_MS - 1000 && backdate <= BACKDATE_MS + 2000,
      `backdate ${backdate}`,
    );
    const ttl = svid.notAfter.getTime() - start;
    assert.ok(ttl > 3_600_000 - 2000 && ttl <= 3_600_000 + 1000, `ttl ${ttl}`);
    assert.equal(svid.serialNumber, cert.serialNumber);
  });

  test('issues an SVID that the shared parser and verifier accept against the CA bundle', async () => {
    const svid = await ca.issueSvid(id, 60_000);
    const parsed = parseX509Svid(svid.certificateDer, svid.privateKeyPkcs8());
    assert.ok(parsed.id.equals(id));
    const bundles = new X509BundleSet([
      new X509Bundle(TD, [new X509Certificate(ca.certificateDer())]),
    ]);
    const verified = verifyX509Svid([svid.certificateDer], bundles);
    assert.ok(verified.id.equals(id));
    assert.equal(verified.serialNumber, svid.serialNumber.toLowerCase());
  });

  test('caps NotAfter at the CA NotAfter', async () => {
    const svid = await ca.issueSvid(id, 10 * DAY_MS);
    assert.equal(svid.notAfter.getTime(), ca.notAfter.getTime());
  });

  test('writes one audit line per SVID with ID, serial and notAfter but no key', async () => {
    sink.lines.length = 0;
    const svid = await ca.issueSvid(id, 60_000, { registration: 'nexus', reason: 'forced' });
    assert.equal(sink.lines.length, 1);
    const line = sink.lines[0] ?? {};
    assert.equal(line.level, 'info');
    assert.equal(line.action, 'svid.issue');
    assert.equal(line.spiffeId, id.toString());
    assert.equal(line.serialNumber, svid.serialNumber);
    assert.equal(line.notAfter, svid.notAfter.toISOString());
    assert.equal(line.registration, 'nexus');
    assert.equal(line.reason, 'forced');
    const key = Buffer.from(svid.privateKeyPkcs8()).toString('base64');
    assert.ok(!JSON.stringify(line).includes(key.slice(0, 40)));
    assert.deepEqual(JSON.parse(JSON.stringify(svid)), {
      spiffeId: id.toString(),
      serialNumber: svid.serialNumber,
      notAfter: svid.notAfter.toISOString(),
    });
  });

  test('refuses IDs outside its trust domain and the trust domain ID itself', async () => {
    await assert.rejects(ca.issueSvid(parseSpiffeId('spiffe://other.org/x'), 60_000), TypeError);
    await assert.rejects(ca.issueSvid(parseSpiffeId('spiffe://example.org'), 60_000), TypeError);
  });

  test('refuses to issue once the CA has expired', async () => {
    const dir = join(root, 'expiring');
    const past = new Date(Date.now() - 2 * DAY_MS);
    let now = past;
    const old = await loadOrCreateCa({
      trustDomain: TD,
      dataDir: dir,
      caTtlMs: DAY_MS,
      logger,
      now: () => now,
    });
    now = new Date();
    await assert.rejects(old.issueSvid(id, 60_000), InternalError);
  });
});
