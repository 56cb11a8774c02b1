// Maps every thrown error to the catalogue's status and shape. Client mistakes never become
// 500s; unexpected errors are logged (without request bodies) and answered generically.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ERROR_CATALOGUE, errorBody, type ErrorCode, unreachableStoreError } from './errors.js';
import { drainRefusedBody } from './refused-body.js';
import { baseUrlHint } from '../shared/base-url-hint.js';

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    err = unreachableStoreError(err) ?? err;
    if (err instanceof AppError) {
      reply.headers(err.headers);
      return reply.code(err.status).send(errorBody(err.code, err.message, err.param));
    }
    const status = (err as FastifyError).statusCode ?? 500;
    let code: ErrorCode;
    let message: string;
    if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      code = 'request_too_large';
      message = 'request body is too large';
      drainRefusedBody(req, reply);
    } else if (status === 415 || err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      code = 'unsupported_media_type';
      message = 'send the body as application/json';
    } else if (
      err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      err instanceof SyntaxError ||
      err.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
    ) {
      code = 'invalid_request';
      message = 'request body is not valid JSON';
    } else if (status >= 400 && status < 500) {
      code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'invalid_request';
      message = status === 404 ? 'not found' : 'invalid request';
    } else {
      req.log.error({ err: { message: err.message, code: err.code, stack: err.stack } }, 'unhandled error');
      code = 'internal_error';
      message = 'internal error';
    }
    return reply
      .code(code === 'internal_error' ? 500 : status >= 400 && status < 500 ? status : 400)
      .send(errorBody(code, message));
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    reply
      .code(404)
      .send(errorBody('not_found', `no route for ${req.method} ${path.slice(0, 200)}${baseUrlHint(path)}`));
  });
}

/**
 * For Fastify's `clientErrorHandler` option: a request Node's HTTP parser rejects before
 * Fastify sees it (headers over the size limit → 431, a request that never finished arriving
 * → 408, malformed HTTP → 400) is answered in the catalogue's shape with an x-request-id,
 * not Node's or Fastify's own bodies.
 */
export function clientErrorHandler(newRequestId: () => string) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [code, message]: [ErrorCode, string] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? ['headers_too_large', 'the request headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['request_timeout', 'the request took too long to arrive']
          : ['invalid_request', 'the request is not valid HTTP'];
    const status = ERROR_CATALOGUE[code].status;
    const body = JSON.stringify(errorBody(code, message));
    if (socket.writable)
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
          `content-type: application/json; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          `x-request-id: ${newRequestId()}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    else socket.destroy();
  };
}

/**
 * For Fastify's `frameworkErrors` option: a URL the router cannot take (bad percent-encoding,
 * a path segment over maxParamLength) is answered before any hook or error handler runs, in
 * Fastify's own shape and without x-request-id. Answer it in the catalogue's shape instead.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const message =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'a path segment is too long'
      : err.code === 'FST_ERR_BAD_URL'
        ? 'the URL is not valid'
        : 'invalid request';
  void reply.code(400).header('x-request-id', req.id).send(errorBody('invalid_request', message));
}
