// A `Channel` as the channels service hands it to a transport, for unit tests that call a
// provider transport directly: active, serving every model asked, no model map or groups.
import type { Channel } from '../../src/channels/service.js';

export const testChannel = (
  fields: Pick<Channel, 'name' | 'type' | 'baseUrl' | 'apiKey' | 'models'> & Partial<Channel>,
): Channel => ({
  id: 1,
  serves: (() => true) as unknown as Channel['serves'],
  modelMap: {},
  priority: 0,
  weight: 1,
  groups: null,
  status: 'active',
  responses: false,
  ...fields,
});

/** Transport timeouts for those tests: short, with room for a loaded machine; no pooling. */
export const TEST_TRANSPORT_OPTIONS = { connectMs: 2000, firstByteMs: 5000, idleMs: 5000, maxConnections: 0 };
