/**
 * drizzle-kit configuration for PostgreSQL: `npm run db:generate` (from the
 * repository root) turns `store/postgres/schema.ts` into committed SQL under
 * `store/postgres/migrations/`, which `store/postgres/db.ts` applies at
 * start-up. The SQLite twin is `drizzle.config.ts`. `drizzle-kit push` is
 * never used.
 *
 * A plain object rather than `defineConfig()`, as in `drizzle.config.ts`.
 */
// biome-ignore lint/style/noDefaultExport: drizzle-kit reads the default export
export default {
  dialect: 'postgresql',
  schema: './nexus/store/postgres/schema.ts',
  out: './nexus/store/postgres/migrations',
  strict: true,
  verbose: true,
};
