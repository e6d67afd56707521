/** How refusals and filter-emitted exceptions become the gateway's `{"error":{"code","message"}}`. */

export interface Refusal {
  status: number;
  code: string;
  message: string;
}

const SNAKE_CASE = /^[a-z][a-z0-9_]{0,63}$/;

export function isSnakeCase(value: unknown): value is string {
  return typeof value === 'string' && SNAKE_CASE.test(value);
}

/** `Unauthorized` → `unauthorized`, `Not Found` → `not_found`; undefined when nothing usable. */
function snakeOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const snake = value.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return isSnakeCase(snake) ? snake : undefined;
}

function isObject(value: unknown): value is Record<string, any> {
  return value !== null && typeof value === 'object';
}

/** Nest's WsException, recognised by shape so that a second copy of @nestjs/websockets still counts. */
function isWsException(error: unknown): error is { getError(): unknown; message: string } {
  return isObject(error) && typeof error.getError === 'function';
}

/** Nest's HttpException (UnauthorizedException, ForbiddenException, ...), by shape. */
function isHttpException(error: unknown): error is { getStatus(): number; getResponse(): unknown; message: string } {
  return isObject(error) && typeof error.getStatus === 'function' && typeof error.getResponse === 'function';
}

/** The code and message of what a filter emitted (`{status, message}`, or a WsException's object). */
export function errorOfPayload(payload: unknown, fallbackCode = 'ws_exception'): { code: string; message: string } {
  if (typeof payload === 'string') return { code: fallbackCode, message: payload };
  if (isObject(payload)) {
    const code = isSnakeCase(payload.code) ? payload.code : fallbackCode;
    const message = typeof payload.message === 'string'
      ? payload.message
      : Array.isArray(payload.message) ? payload.message.join('; ') : 'the server refused the event';
    return { code, message };
  }
  return { code: fallbackCode, message: 'the server refused the event' };
}

/**
 * A connection refused by what handleConnection threw. WsException and HttpException (and any
 * error with a snake_case `code`) are the app's deliberate refusals: their message reaches the
 * client. Anything else is a failure: logged by the caller, and the client gets a plain message.
 */
export function refusalOf(error: unknown): Refusal & { deliberate: boolean } {
  if (isWsException(error)) {
    const { code, message } = errorOfPayload(error.getError());
    return { status: 403, code, message, deliberate: true };
  }
  if (isHttpException(error)) {
    const status = error.getStatus();
    const response = error.getResponse();
    const code = (isObject(response) && (isSnakeCase(response.code) ? response.code : snakeOf(response.error)))
      || snakeOf(error.message) || 'connection_refused';
    return { status: status >= 400 && status < 500 ? status : 403, code, message: error.message, deliberate: true };
  }
  if (isObject(error) && isSnakeCase(error.code)) {
    const message = typeof error.message === 'string' && error.message !== '' ? error.message : 'the server refused the connection';
    const status = Number.isInteger(error.status) && error.status >= 400 && error.status < 500 ? error.status : 403;
    return { status, code: error.code, message, deliberate: true };
  }
  return { status: 403, code: 'connection_refused', message: 'the server refused the connection', deliberate: false };
}
