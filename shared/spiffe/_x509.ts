/**
 * The single entry to @peculiar/x509, which builds certificates: the agent's
 * CA and the tests. Reading them is `_cert_cache.ts`'s, with the ASN.1
 * schemas underneath this library, so that programs that only read SVIDs
 * never load it. The library needs a Reflect metadata polyfill before it is
 * evaluated; ESM evaluates imports in order, so the polyfill import must stay
 * first in this file.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
