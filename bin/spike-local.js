#!/usr/bin/env node
// Starts launcher/main.ts on Node through tsx (Deno runs the .ts file directly: see deno.json tasks).
import { register } from 'tsx/esm/api';

register();
await import('../launcher/main.ts');
