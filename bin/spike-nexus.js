#!/usr/bin/env node
// Starts nexus/main.ts on Node through tsx (Deno runs the .ts file directly: see deno.json tasks).
import { register } from 'tsx/esm/api';

register();
await import('../nexus/main.ts');
