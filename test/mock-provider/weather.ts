// The tool every protocol's mock tests declare (as its function, input or parameters schema),
// and the arguments the mock writes for it: each required property set by its type ("mole",
// 1, true, {}), the optional `note` left out.
export const WEATHER_SCHEMA = {
  type: 'object' as const,
  properties: {
    city: { type: 'string' },
    days: { type: 'integer' },
    hours: { type: 'number' },
    metric: { type: 'boolean' },
    where: { type: 'object' },
    note: { type: 'string' },
  },
  required: ['city', 'days', 'hours', 'metric', 'where'],
};

export const WEATHER_ARGS = { city: 'mole', days: 1, hours: 1, metric: true, where: {} };
