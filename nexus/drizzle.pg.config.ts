/**
 * drizzle-kit configuration for PostgreSQL: `npm run db:generate` (from the
 * repository root) turns `store/pg_schema.ts` into committed SQL under
 * `store/migrations_pg/`, which `store/pg_db.ts` applies at start-up. The
 * SQLite twin is `drizzle.config.ts`. `drizzle-kit push` is never used.
 *
 * A plain object rather than `defineConfig()`, as in `drizzle.config.ts`.
 */
// biome-ignore lint/style/noDefaultExport: drizzle-kit reads the default export
export default {
  dialect: 'postgresql',
  schema: './nexus/store/pg_schema.ts',
  out: './nexus/store/migrations_pg',
  strict: true,
  verbose: true,
};
