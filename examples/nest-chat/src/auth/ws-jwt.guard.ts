import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { JwtService } from '@nestjs/jwt';
import { WsException } from '@nestjs/websockets';
import type { Socket } from 'socket.io';
import { ROLES_KEY } from './roles.decorator';
import { tokenOf } from './token';

/**
 * Lets a message through when the socket was authenticated by handleConnection (client.data.userId)
 * or carries a valid token, and holds the roles the handler asks for with @Roles().
 */
@Injectable()
export class WsJwtGuard implements CanActivate {
  constructor(
    private readonly jwt: JwtService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const client = context.switchToWs().getClient<Socket>();
    let userId: string | undefined = client.data?.userId;
    let roles: string[] = Array.isArray(client.data?.roles) ? client.data.roles : [];
    const token = tokenOf(client);
    if (userId === undefined && token !== undefined) {
      try {
        const claims = await this.jwt.verifyAsync<{ sub: string; roles?: string[] }>(token, { algorithms: ['HS256'] });
        userId = claims.sub;
        roles = claims.roles ?? [];
      } catch {
        throw new WsException('invalid token');
      }
    }
    if (userId === undefined) throw new WsException('not authenticated');
    const needed = this.reflector.get<string[] | undefined>(ROLES_KEY, context.getHandler()) ?? [];
    if (needed.length > 0 && !needed.some((role) => roles.includes(role))) {
      throw new WsException(`this needs the role ${needed.join(' or ')}`);
    }
    return true;
  }
}
