// Model allowlists: exact names, or a prefix ending in "*" ("gpt-4o*").
export interface ModelMatcher {
  allows(model: string): boolean;
}

export function compileModelList(list: string[] | null): ModelMatcher | null {
  if (list === null) return null;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const m of list) {
    if (m.endsWith('*')) prefixes.push(m.slice(0, -1));
    else exact.add(m);
  }
  return {
    allows(model: string) {
      if (exact.has(model)) return true;
      for (const p of prefixes) if (model.startsWith(p)) return true;
      return false;
    },
  };
}
