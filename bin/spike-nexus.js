#!/usr/bin/env -S node --max-semi-space-size=8
// spike-nexus: see _start.js for why it runs its bundle in dist/ or the sources.
// The flag caps V8's young generation at 8 MiB a semi-space (16 by default):
// under load it held 27 MiB of Nexus's memory for no throughput (ADR 0032).
// The launcher and the test harness read it from this line, so a Nexus they
// start runs as one started from its bin does.
import { start } from './_start.js';

await start('spike-nexus');
