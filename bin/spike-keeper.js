#!/usr/bin/env node
// spike-keeper: see _start.js for why it runs from dist/ or from the sources.
import { start } from './_start.js';

await start('keeper');
