// Log serializers that never let a credential through: headers that may carry keys or
// sessions are dropped, and ?key= is masked in URLs.
const SECRET_QUERY = /([?&](?:key|api_key|token)=)[^&]*/gi;

export const redactUrl = (url: string) => url.replace(SECRET_QUERY, '$1[redacted]');

export const redactingSerializers = {
  req(req: { method?: string; url?: string; id?: string }) {
    return { method: req.method, url: req.url ? redactUrl(req.url) : undefined, id: req.id };
  },
  res(res: { statusCode?: number }) {
    return { statusCode: res.statusCode };
  },
};
