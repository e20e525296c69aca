/**
 * drizzle-kit configuration for SQLite: `npm run db:generate` (from the
 * repository root) turns `store/sqlite/schema.ts` into committed SQL under
 * `store/sqlite/migrations/`, which `store/sqlite/db.ts` applies at start-up.
 * The PostgreSQL twin is `drizzle.pg.config.ts`. `drizzle-kit push` is never
 * used.
 *
 * A plain object rather than `defineConfig()`: Nexus code may not import
 * drizzle-kit (a dev tool), and the tool validates this object when it runs.
 */
// biome-ignore lint/style/noDefaultExport: drizzle-kit reads the default export
export default {
  dialect: 'sqlite',
  schema: './nexus/store/sqlite/schema.ts',
  out: './nexus/store/sqlite/migrations',
  strict: true,
  verbose: true,
};
