import type { Kysely } from 'kysely';
import type { Database } from './db.js';
export class ReadModels {
  constructor(readonly db: Kysely<Database>) {}
}
