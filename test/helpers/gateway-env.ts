// The environment a spawned gateway process (src/main.ts) starts with.

/** Settings of the test's own environment that must not leak into a spawned gateway. */
const NOT_INHERITED = ['DATABASE_URL', 'REDIS_URL', 'MOLE_SECRET', 'MOLE_TRUSTED_PROXIES'];

/**
 * This process's environment for a gateway on loopback `port`: without its storage, secret and
 * proxy settings, and `env` on top (a variable `env` gives as undefined is left unset).
 */
export function gatewayEnv(port: number, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const full: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1' };
  for (const v of NOT_INHERITED) delete full[v];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  return full;
}
