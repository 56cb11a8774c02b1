import { describe, expect, it } from 'vitest';
import { isTransientMigrationFailure } from './open.js';

describe('isTransientMigrationFailure', () => {
  // The failures seen when the migrator's look at every schema's tables races another
  // schema's DDL (its introspection calls pg_get_serial_sequence by name), before any of our
  // migrations ran: the message names no migration.
  it.each([
    'database migration failed: relation "t_1f2e.logs_p20261205" does not exist',
    'database migration failed: column "channel_id" of relation "logs_p20261205" does not exist',
    'schema "t_9a8b7c" does not exist',
  ])('retries %s', (message) => {
    expect(isTransientMigrationFailure(new Error(message))).toBe(true);
  });

  it.each([
    // a migration of ours failed: a real error, never retried
    'database migration failed at 0015_logs_partitions: relation "logs_before" does not exist',
    'database migration failed at 0004_usage: column "x" of relation "logs" does not exist',
    'database migration failed: permission denied for schema public',
    'connect ECONNREFUSED 127.0.0.1:5432',
  ])('does not retry %s', (message) => {
    expect(isTransientMigrationFailure(new Error(message))).toBe(false);
  });
});
