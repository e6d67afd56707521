/**
 * Reading a hook call and writing its answer, on node's request and response whatever the HTTP
 * platform: the route is mounted so that no body parser reads the request first (mount.ts), so
 * the stream is still unread and the signature is checked over the exact bytes the gateway
 * signed; the body's size is limited here, and the answer's `after` runs once it is written.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The answer to one hook call. `body` undefined → no body (204). */
export interface Answer {
  status: number;
  body?: unknown;
  /** Runs once the answer has been written (calls the gateway should see after it). */
  after?: () => void;
}

export class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type RawRequest = IncomingMessage & { rawBody?: unknown; body?: unknown; _body?: boolean };

/** The request's bytes exactly as received: read from the stream, or what a raw parser kept. */
export async function rawBodyOf(req: RawRequest, maxBytes: number): Promise<Uint8Array> {
  const consumed = req._body === true || req.readableEnded;
  if (!consumed) return readStream(req, maxBytes);
  if (Buffer.isBuffer(req.rawBody)) return req.rawBody;
  if (Buffer.isBuffer(req.body)) return req.body;
  if (typeof req.body === 'string') return Buffer.from(req.body);
  throw new BodyError(
    500,
    'raw_body_required',
    'the hook call body was parsed before the Switchboard route saw it, so its signature cannot be checked: '
    + 'create the app with NestFactory.create(AppModule, { rawBody: true }), or mount JSON body parsers '
    + 'after app.useWebSocketAdapter(new SwitchboardAdapter(...))',
  );
}

function readStream(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  if (Number(req.headers['content-length']) > maxBytes) {
    req.resume();
    return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer | string) => {
      if (over) return;
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += bytes.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(bytes);
    });
    req.on('end', () => (over ? reject(tooLarge(maxBytes)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function tooLarge(maxBytes: number): BodyError {
  return new BodyError(413, 'too_large', `a hook call is at most ${maxBytes} bytes`);
}

/** Writes `answer` (JSON, or nothing for 204) and runs its `after` once it is sent. */
export function writeAnswer(res: ServerResponse, answer: Answer): void {
  let text: string | undefined;
  if (answer.body !== undefined && answer.status !== 204) {
    try {
      text = JSON.stringify(answer.body);
    } catch (error) {
      answer = { status: 500, body: undefined };
      text = JSON.stringify({ error: { code: 'handler_failed', message: 'the handler returned a value JSON cannot carry' } });
    }
  }
  if (text === undefined) {
    res.writeHead(answer.status === 200 ? 204 : answer.status);
    res.end(answer.after);
    return;
  }
  res.writeHead(answer.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text, answer.after);
}

export function errorAnswer(status: number, code: string, message: string): Answer {
  return { status, body: { error: { code, message } } };
}
