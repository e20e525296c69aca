// Writes shared/spiffe/workload_proto.json, the descriptor of the vendored
// workload.proto that the programs load (shared/spiffe/workload_proto.ts), so
// that no program parses a .proto file when it starts. Run it after editing
// workload.proto: `node scripts/workload_proto.js`. shared/spiffe's
// workload_proto.test.ts fails while the two differ.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'shared', 'spiffe');

// keepCase: the field names of the proto (spiffe_id, x509_svid…), which the
// message decoding and the agent's answers use.
const root = new protobuf.Root().loadSync(join(DIR, 'workload.proto'), { keepCase: true });
root.resolveAll();
writeFileSync(join(DIR, 'workload_proto.json'), `${JSON.stringify(root.toJSON(), null, 2)}\n`);
