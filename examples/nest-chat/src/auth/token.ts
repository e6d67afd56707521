import type { JwtService } from '@nestjs/jwt';
import type { Socket } from 'socket.io';

export interface TokenClaims {
  sub: string;
  roles?: string[];
}

/** The client's token: `auth: { token }` (with or without `Bearer `), else the Authorization header. */
export function tokenOf(client: Socket): string | undefined {
  const fromAuth = client.handshake.auth?.token;
  const header = client.handshake.headers?.authorization;
  const raw = typeof fromAuth === 'string' && fromAuth !== '' ? fromAuth : typeof header === 'string' ? header : undefined;
  const token = raw?.startsWith('Bearer ') ? raw.slice('Bearer '.length) : raw;
  return token === '' ? undefined : token;
}

/** Verifies the client's token (HS256, JWT_SECRET); the claims, or null when it is missing or bad. */
export async function verifyClient(jwt: JwtService, client: Socket): Promise<TokenClaims | null> {
  const token = tokenOf(client);
  if (token === undefined) return null;
  try {
    const claims = await jwt.verifyAsync<TokenClaims>(token, { algorithms: ['HS256'] });
    return typeof claims.sub === 'string' && claims.sub !== '' ? claims : null;
  } catch {
    return null;
  }
}
