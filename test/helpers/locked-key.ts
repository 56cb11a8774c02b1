// A key that an admin, the kill switch, the anomaly guard or a leak report switched off is
// locked: its owner cannot switch it back on (only an admin can).
import { expect } from 'vitest';
import { expectApiError, session } from '../foundation/util.js';
import type { TestServer } from './server.js';

/**
 * A locked key stays off for its owner: signed in, they are refused (403 forbidden) when they
 * switch it back on. Answers the owner's session.
 */
export async function expectOwnerCannotEnable(
  s: TestServer,
  owner: { username: string; password: string },
  keyId: number,
) {
  const me = await session(s, owner.username, owner.password);
  const r = await me.call('PATCH', `/api/keys/${keyId}`, { status: 'active' });
  expectApiError(r, 403, 'forbidden');
  // Whoever switched it off, the answer says it is locked (not that an admin did it).
  expect(r.body.error.message).toMatch(/^this key is locked/);
  return me;
}
