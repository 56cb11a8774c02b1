// OpenAI Responses: POST /v1/responses.
import type { ProtocolRoutes } from './kit.js';

export const responsesRoutes: ProtocolRoutes = () => false;
