// Anthropic Messages: POST /v1/messages, /v1/messages/count_tokens.
import type { ProtocolRoutes } from './kit.js';

export const anthropicRoutes: ProtocolRoutes = () => false;
