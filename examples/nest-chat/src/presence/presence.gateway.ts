import { Logger } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import {
  OnGatewayConnection,
  OnGatewayDisconnect,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
} from '@nestjs/websockets';
import { Namespace, Socket } from 'socket.io';
import { verifyClient } from '../auth/token';

/**
 * Who is online. The map is the namespace itself: `fetchSockets()` lists the connected sockets
 * with their socket.data, so it holds across any number of app instances.
 */
@WebSocketGateway({ namespace: '/presence', cors: { origin: '*' } })
export class PresenceGateway implements OnGatewayConnection, OnGatewayDisconnect {
  @WebSocketServer()
  server: Namespace;

  private readonly logger = new Logger(PresenceGateway.name);

  constructor(private readonly jwt: JwtService) {}

  async handleConnection(client: Socket) {
    const claims = await verifyClient(this.jwt, client);
    if (claims === null) {
      client.disconnect();
      return;
    }
    client.data.userId = claims.sub;
    this.server.emit('user-online', { userId: claims.sub });
  }

  async handleDisconnect(client: Socket) {
    const userId: string | undefined = client.data?.userId;
    if (userId === undefined) return;
    const sockets = await this.server.fetchSockets();
    const elsewhere = sockets.some((socket) => socket.id !== client.id && socket.data?.userId === userId);
    if (!elsewhere) this.server.emit('user-offline', { userId });
    this.logger.log(`${userId} left presence${elsewhere ? ' (still online elsewhere)' : ''}`);
  }

  @SubscribeMessage('get-online-users')
  async getOnlineUsers() {
    const sockets = await this.server.fetchSockets();
    const users = new Set<string>();
    for (const socket of sockets) {
      if (typeof socket.data?.userId === 'string') users.add(socket.data.userId);
    }
    return { users: [...users].sort() };
  }
}
