/**
 * The local trust-domain CA of the embedded agent: a self-signed EC P-256
 * root whose only URI SAN is `spiffe://<td>`, and the X509-SVIDs it signs.
 *
 * The CA lives in the data dir as two PEM files. A CA that is present is
 * loaded only if it is sound (owner-only key file, key matching the
 * certificate, right trust domain, not expired); otherwise the agent refuses
 * to start instead of quietly minting a new root that no peer trusts yet.
 * The signing key is held as a non-extractable CryptoKey in a #private field.
 */
import { randomUUID, webcrypto } from 'node:crypto';
import { chmod, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OWNER_ONLY_FILE, refuseLooseMode } from '../shared/config/file_modes.ts';
import { ConfigError, InternalError } from '../shared/errors/errors.ts';
import type { Logger } from '../shared/log/logger.ts';
import { x509 } from '../shared/spiffe/_x509.ts';
import type { SpiffeId, TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { type CryptoKey, EC_ALGORITHM, importSigningKey, issueCertificate } from './certificate.ts';

export const CA_KEY_FILE = 'ca_key.pem';
export const CA_CERT_FILE = 'ca_cert.pem';
/** NotBefore is set this far in the past to absorb clock skew, as SPIRE does. */
export const BACKDATE_MS = 10_000;
/** Default subject of issued SVIDs (SPIRE uses `C=US, O=SPIRE`). */
export const SVID_SUBJECT = 'O=SPIKE';
const CA_SUBJECT = 'O=SPIKE, CN=SPIKE agent CA';
const VERIFY_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface CaOptions {
  readonly trustDomain: TrustDomain;
  readonly dataDir: string;
  /** Lifetime of a CA created now; a loaded CA keeps its own. */
  readonly caTtlMs: number;
  readonly logger: Logger;
  /** The clock; tests move it. */
  readonly now?: () => Date;
}

export interface IssueOptions {
  /** Registration name, for the audit line. */
  readonly registration?: string;
  /** Why the SVID is issued (`initial`, `rotation`, `forced`), for the audit line. */
  readonly reason?: string;
}

/**
 * One issued X509-SVID: the leaf, its private key and its validity. The key
 * sits in a #private field and never reaches JSON or a log line.
 */
export class IssuedSvid {
  readonly spiffeId: SpiffeId;
  /** DER of the leaf certificate. */
  readonly certificateDer: Uint8Array;
  /** Hex serial number, as the certificate carries it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly #privateKeyPkcs8: Uint8Array;

  constructor(
    spiffeId: SpiffeId,
    parts: {
      readonly certificateDer: Uint8Array;
      readonly privateKeyPkcs8: Uint8Array;
      readonly serialNumber: string;
      readonly notBefore: Date;
      readonly notAfter: Date;
    },
  ) {
    this.spiffeId = spiffeId;
    this.certificateDer = parts.certificateDer;
    this.serialNumber = parts.serialNumber;
    this.notBefore = parts.notBefore;
    this.notAfter = parts.notAfter;
    this.#privateKeyPkcs8 = parts.privateKeyPkcs8;
    Object.freeze(this);
  }

  /** A copy of the unencrypted PKCS#8 DER private key. */
  privateKeyPkcs8(): Uint8Array {
    return this.#privateKeyPkcs8.slice();
  }

  toJSON(): Record<string, string> {
    return {
      spiffeId: this.spiffeId.toString(),
      serialNumber: this.serialNumber,
      notAfter: this.notAfter.toISOString(),
    };
  }
}

export class LocalCa {
  readonly trustDomain: TrustDomain;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly #certificate: x509.X509Certificate;
  readonly #der: Uint8Array;
  readonly #signingKey: CryptoKey;
  readonly #logger: Logger;
  readonly #now: () => Date;

  constructor(
    trustDomain: TrustDomain,
    parts: {
      readonly certificate: x509.X509Certificate;
      readonly signingKey: CryptoKey;
      readonly logger: Logger;
      readonly now: () => Date;
    },
  ) {
    this.trustDomain = trustDomain;
    this.#certificate = parts.certificate;
    this.#der = new Uint8Array(parts.certificate.rawData);
    this.#signingKey = parts.signingKey;
    this.#logger = parts.logger;
    this.#now = parts.now;
    this.serialNumber = parts.certificate.serialNumber;
    this.notBefore = parts.certificate.notBefore;
    this.notAfter = parts.certificate.notAfter;
    Object.freeze(this);
  }

  /** DER of the CA certificate: the trust bundle of this trust domain. */
  certificateDer(): Uint8Array {
    return this.#der.slice();
  }

  certificatePem(): string {
    return this.#certificate.toString('pem');
  }

  /**
   * Issues an X509-SVID for `id` (X509-SVID.md §4, SPIFFE spec §2.1): one URI
   * SAN, cA=false, critical keyUsage digitalSignature, EKU serverAuth and
   * clientAuth, NotBefore backdated by 10 s, NotAfter capped at the CA's.
   * Logs one info line per SVID: the identity-assignment audit record.
   */
  async issueSvid(id: SpiffeId, ttlMs: number, options: IssueOptions = {}): Promise<IssuedSvid> {
    if (!id.isMemberOf(this.trustDomain) || id.path === '') {
      throw new TypeError(
        `Cannot issue an X509-SVID for "${id.toString()}": it needs a path in trust domain "${this.trustDomain.name}"`,
      );
    }
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new RangeError(`SVID TTL must be a positive number of milliseconds, got ${ttlMs}`);
    }
    const now = this.#now().getTime();
    if (now >= this.notAfter.getTime()) {
      throw new InternalError(
        `The agent CA expired at ${this.notAfter.toISOString()}; cannot issue an X509-SVID for "${id.toString()}"`,
      );
    }
    const notBefore = Math.max(now - BACKDATE_MS, this.notBefore.getTime());
    const notAfter = Math.min(now + ttlMs, this.notAfter.getTime());
    const issued = await issueCertificate(
      {
        subject: SVID_SUBJECT,
        uriSans: [id.toString()],
        isCa: false,
        keyUsage: ['digitalSignature'],
        extKeyUsage: ['serverAuth', 'clientAuth'],
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
      },
      { certificate: this.#certificate, privateKey: this.#signingKey },
    );
    const svid = new IssuedSvid(id, {
      certificateDer: issued.der,
      privateKeyPkcs8: issued.privateKeyPkcs8,
      serialNumber: issued.certificate.serialNumber,
      notBefore: issued.certificate.notBefore,
      notAfter: issued.certificate.notAfter,
    });
    this.#logger.info('Issued X509-SVID', {
      action: 'svid.issue',
      spiffeId: id.toString(),
      serialNumber: svid.serialNumber,
      notAfter: svid.notAfter.toISOString(),
      ...(options.registration === undefined ? {} : { registration: options.registration }),
      ...(options.reason === undefined ? {} : { reason: options.reason }),
    });
    return svid;
  }
}

/**
 * Loads the CA from `<dataDir>/ca_key.pem` and `ca_cert.pem`, or creates both
 * when neither exists. Throws `ConfigError` (one problem, saying what to do)
 * when the files are there but unusable.
 */
export async function loadOrCreateCa(options: CaOptions): Promise<LocalCa> {
  const now = options.now ?? (() => new Date());
  const keyPath = join(options.dataDir, CA_KEY_FILE);
  const certPath = join(options.dataDir, CA_CERT_FILE);
  const hasKey = await exists(keyPath);
  const hasCert = await exists(certPath);
  if (hasKey && hasCert) {
    const ca = await loadCa({ ...options, keyPath, certPath, now });
    options.logger.info('Loaded the trust domain CA', {
      trustDomain: options.trustDomain.name,
      serialNumber: ca.serialNumber,
      notAfter: ca.notAfter.toISOString(),
      path: certPath,
    });
    return ca;
  }
  if (hasKey !== hasCert) {
    const [present, missing] = hasKey ? [keyPath, certPath] : [certPath, keyPath];
    refuse(
      `Found "${present}" but not "${missing}"; the agent will not replace a CA it cannot load. Restore the missing file, or delete "${present}" to create a new CA`,
    );
  }
  const ca = await createCa({ ...options, keyPath, certPath, now });
  options.logger.info('Created a new trust domain CA', {
    trustDomain: options.trustDomain.name,
    serialNumber: ca.serialNumber,
    notAfter: ca.notAfter.toISOString(),
    path: certPath,
  });
  return ca;
}

interface CaPaths extends CaOptions {
  readonly keyPath: string;
  readonly certPath: string;
  readonly now: () => Date;
}

async function createCa(options: CaPaths): Promise<LocalCa> {
  await ensurePrivateDir(options.dataDir);
  const now = options.now().getTime();
  const issued = await issueCertificate({
    subject: CA_SUBJECT,
    uriSans: [options.trustDomain.idString()],
    isCa: true,
    pathLength: 0,
    keyUsage: ['keyCertSign', 'cRLSign'],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + options.caTtlMs),
  });
  const pkcs8 = issued.privateKeyPkcs8;
  try {
    const keyPem = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
    // Key first: a crash between the two renames leaves a key without a
    // certificate, which the next start refuses loudly.
    await writeFileAtomic(options.keyPath, keyPem, 0o600);
    await writeFileAtomic(options.certPath, issued.certificate.toString('pem'), 0o644);
    const signingKey = await importSigningKey(pkcs8);
    return new LocalCa(options.trustDomain, {
      certificate: issued.certificate,
      signingKey,
      logger: options.logger,
      now: options.now,
    });
  } finally {
    pkcs8.fill(0);
  }
}

async function loadCa(options: CaPaths): Promise<LocalCa> {
  const { keyPath, certPath, trustDomain } = options;
  const keyStat = await lstat(keyPath);
  if (!keyStat.isFile()) {
    refuse(`CA key "${keyPath}" is not a regular file; the agent will not follow links to keys`);
  }
  refuseLooseMode('CA key', keyPath, keyStat.mode, OWNER_ONLY_FILE);

  const certificate = parseCertificatePem(await readFile(certPath, 'utf8'), certPath);
  await checkCaCertificate(certificate, { trustDomain, certPath, now: options.now() });

  const pkcs8 = parsePrivateKeyPem(await readFile(keyPath, 'utf8'), keyPath);
  let signingKey: CryptoKey;
  try {
    signingKey = await importSigningKey(pkcs8);
  } catch (err) {
    refuse(`CA key "${keyPath}" is not an unencrypted PKCS#8 EC P-256 key`, err);
  } finally {
    pkcs8.fill(0);
  }
  if (!(await keyMatchesCertificate(signingKey, certificate))) {
    refuse(`CA key "${keyPath}" does not belong to the certificate "${certPath}"`);
  }
  return new LocalCa(trustDomain, {
    certificate,
    signingKey,
    logger: options.logger,
    now: options.now,
  });
}

async function checkCaCertificate(
  certificate: x509.X509Certificate,
  context: { readonly trustDomain: TrustDomain; readonly certPath: string; readonly now: Date },
): Promise<void> {
  const { certPath, trustDomain, now } = context;
  const basic = certificate.getExtension(x509.BasicConstraintsExtension);
  if (basic === null || !basic.ca) {
    refuse(`CA certificate "${certPath}" is not a CA certificate (basicConstraints cA is not set)`);
  }
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  if (usage === null || (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    refuse(`CA certificate "${certPath}" may not sign certificates (keyUsage lacks keyCertSign)`);
  }
  const uris = uriSans(certificate);
  const expected = trustDomain.idString();
  if (uris.length !== 1 || uris[0] !== expected) {
    const found = uris.length === 0 ? 'no SPIFFE ID' : uris.map((u) => `"${u}"`).join(', ');
    refuse(
      `CA certificate "${certPath}" is for ${found}, not for trust domain "${trustDomain.name}" ("${expected}"). Point SPIKE_AGENT_DATA_DIR elsewhere or fix SPIKE_TRUST_ROOT`,
    );
  }
  if (certificate.notAfter.getTime() <= now.getTime()) {
    refuse(
      `CA certificate "${certPath}" expired at ${certificate.notAfter.toISOString()}. Delete "${certPath}" and the key next to it to create a new CA; every workload then needs new SVIDs`,
    );
  }
  if (certificate.notBefore.getTime() > now.getTime() + BACKDATE_MS) {
    refuse(
      `CA certificate "${certPath}" is not valid before ${certificate.notBefore.toISOString()}; check the system clock`,
    );
  }
  if (!(await certificate.verify({ publicKey: certificate.publicKey, signatureOnly: true }))) {
    refuse(`CA certificate "${certPath}" is not correctly self-signed`);
  }
}

/** Proves possession: a signature by the key must verify with the certificate's public key. */
async function keyMatchesCertificate(
  signingKey: CryptoKey,
  certificate: x509.X509Certificate,
): Promise<boolean> {
  const challenge = webcrypto.getRandomValues(new Uint8Array(32));
  const signature = await webcrypto.subtle.sign(VERIFY_ALGORITHM, signingKey, challenge);
  let publicKey: CryptoKey;
  try {
    publicKey = await certificate.publicKey.export(EC_ALGORITHM, ['verify']);
  } catch {
    return false;
  }
  return webcrypto.subtle.verify(VERIFY_ALGORITHM, publicKey, signature, challenge);
}

function uriSans(certificate: x509.X509Certificate): string[] {
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  if (san === null) {
    return [];
  }
  return san.names.items.filter((name) => name.type === 'url').map((name) => name.value);
}

function parseCertificatePem(pem: string, path: string): x509.X509Certificate {
  const blocks = pemBlocks(pem, path);
  if (blocks.length !== 1 || blocks[0]?.type !== 'CERTIFICATE') {
    refuse(`CA certificate "${path}" must hold exactly one PEM CERTIFICATE block`);
  }
  try {
    return new x509.X509Certificate(blocks[0].rawData);
  } catch (err) {
    refuse(`CA certificate "${path}" cannot be parsed`, err);
  }
}

function parsePrivateKeyPem(pem: string, path: string): Uint8Array {
  const blocks = pemBlocks(pem, path);
  if (blocks.length !== 1 || blocks[0]?.type !== 'PRIVATE KEY') {
    refuse(`CA key "${path}" must hold exactly one PEM "PRIVATE KEY" (PKCS#8) block`);
  }
  return new Uint8Array(blocks[0].rawData);
}

function pemBlocks(pem: string, path: string): { type: string; rawData: ArrayBuffer }[] {
  try {
    return x509.PemConverter.decodeWithHeaders(pem);
  } catch (err) {
    refuse(`"${path}" is not a PEM file`, err);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) {
      return false;
    }
    throw err;
  }
}

/** Creates the directory (and parents) owner-only; an existing one is left as it is. */
async function ensurePrivateDir(path: string): Promise<void> {
  const created = await mkdir(path, { recursive: true, mode: 0o700 });
  if (created !== undefined) {
    await chmod(path, 0o700);
  }
}

/** Writes a temporary file with `mode`, flushes it, then renames it into place. */
async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`;
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temp, path);
}

function refuse(message: string, cause?: unknown): never {
  const error = new ConfigError([message]);
  if (cause !== undefined) {
    Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  }
  throw error;
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}
