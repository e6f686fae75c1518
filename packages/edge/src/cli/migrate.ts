/** `bourse migrate --pg URL [--schema S] | --pglite DIR`: create or upgrade the store schema. */
import { migrate, openStore } from '@bourse/store';

export async function runMigrate(target: { pg: string; schema?: string } | { pglite: string }): Promise<void> {
  if ('pg' in target) {
    const report = await migrate(target.pg, target.schema !== undefined ? { schema: target.schema } : {});
    console.log(JSON.stringify(report));
    return;
  }
  const store = await openStore({ pglite: target.pglite }); // PGlite migrates itself on open
  await store.close();
  console.log(JSON.stringify({ pglite: target.pglite, migrated: true }));
}
