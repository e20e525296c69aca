#!/usr/bin/env node
// spike-keeper: see _start.js for why it runs its bundle in dist/ or the sources.
import { start } from './_start.js';

await start('spike-keeper');
