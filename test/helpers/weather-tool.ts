// The tool the protocol suites declare, each in its protocol's own wrapping: a function of two
// required arguments, which the mock provider fills as { city: 'mole', days: 1 }. This is the
// OpenAI chat `function` shape; Anthropic calls `parameters` input_schema, Gemini
// parametersJsonSchema.
export const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: {
    type: 'object' as const,
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city', 'days'],
  },
};
