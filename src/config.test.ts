// Configuration parsing: the usage journal's sync modes (MOLE_JOURNAL_FSYNC, its older 1 / 0
// spellings, and the interval), with a bad value stopping the start with a clear message.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('config: usage journal sync', () => {
  it('defaults to interval mode every 50 ms', () => {
    expect(loadConfig({})).toMatchObject({ journalSync: 'interval', journalSyncIntervalMs: 50 });
    expect(loadConfig({ MOLE_JOURNAL_FSYNC: '' }).journalSync).toBe('interval');
  });

  it('takes the mode names, and 1 / 0 for always / never', () => {
    const mode = (v: string) => loadConfig({ MOLE_JOURNAL_FSYNC: v }).journalSync;
    expect(['always', 'interval', 'never', ' Always ', '1', '0'].map(mode)).toEqual([
      'always',
      'interval',
      'never',
      'always',
      'always',
      'never',
    ]);
    expect(loadConfig({ MOLE_JOURNAL_FSYNC_MS: '200' }).journalSyncIntervalMs).toBe(200);
  });

  it('refuses anything else, naming the setting', () => {
    for (const v of ['2', 'yes', 'sometimes']) {
      expect(() => loadConfig({ MOLE_JOURNAL_FSYNC: v })).toThrow(ConfigError);
      expect(() => loadConfig({ MOLE_JOURNAL_FSYNC: v })).toThrow(
        /MOLE_JOURNAL_FSYNC: must be always, interval or never/,
      );
    }
    for (const v of ['0', '-5', '1.5', 'soon', '60001'])
      expect(() => loadConfig({ MOLE_JOURNAL_FSYNC_MS: v })).toThrow(
        /MOLE_JOURNAL_FSYNC_MS: must be an integer between 1 and 60000/,
      );
  });
});
