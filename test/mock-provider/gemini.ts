// Gemini: /v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens.
import type { ProtocolRoutes } from './kit.js';

export const geminiRoutes: ProtocolRoutes = () => false;
