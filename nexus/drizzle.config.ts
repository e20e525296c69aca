/**
 * drizzle-kit configuration: `npm run db:generate` (from the repository root)
 * turns `store/schema.ts` into committed SQL under `store/migrations/`, which
 * `store/db.ts` applies at start-up. `drizzle-kit push` is never used.
 *
 * A plain object rather than `defineConfig()`: Nexus code may not import
 * drizzle-kit (a dev tool), and the tool validates this object when it runs.
 */
// biome-ignore lint/style/noDefaultExport: drizzle-kit reads the default export
export default {
  dialect: 'sqlite',
  schema: './nexus/store/schema.ts',
  out: './nexus/store/migrations',
  strict: true,
  verbose: true,
};
