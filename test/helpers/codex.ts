// What Codex CLI (wire_api = "responses") sends with every turn besides its model, instructions,
// input and tools: automatic tool choice one call at a time, reasoning it keeps itself (nothing
// stored upstream, the encrypted reasoning sent back), a stream, and a prompt cache key per thread.
export const CODEX_TURN_SETTINGS = {
  tool_choice: 'auto',
  parallel_tool_calls: false,
  reasoning: { effort: 'medium', summary: 'auto' },
  store: false,
  stream: true,
  include: ['reasoning.encrypted_content'],
  prompt_cache_key: 'thread-1',
};
