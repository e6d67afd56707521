import { Logger, UseFilters, UseGuards } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
  WsException,
  WsResponse,
} from '@nestjs/websockets';
import { randomUUID } from 'node:crypto';
import { Namespace, Socket } from 'socket.io';
import { Roles } from '../auth/roles.decorator';
import { verifyClient } from '../auth/token';
import { WsJwtGuard } from '../auth/ws-jwt.guard';
import { WsExceptionFilter } from '../common/ws-exception.filter';

export interface ChatMessage {
  id: string;
  roomId: string;
  content: string;
  senderId: string;
  createdAt: string;
}

function roomIdOf(body: unknown): string {
  const roomId = (body as { roomId?: unknown } | undefined)?.roomId;
  if (typeof roomId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(roomId)) {
    throw new WsException('roomId must be 1 to 64 letters, digits, _ . or -');
  }
  return roomId;
}

@UseFilters(WsExceptionFilter)
@WebSocketGateway({ namespace: '/chat', cors: { origin: '*' } })
export class ChatGateway implements OnGatewayConnection, OnGatewayDisconnect {
  @WebSocketServer()
  server: Namespace;

  private readonly logger = new Logger(ChatGateway.name);

  constructor(private readonly jwt: JwtService) {}

  async handleConnection(client: Socket) {
    const claims = await verifyClient(this.jwt, client);
    if (claims === null) {
      this.logger.warn(`refused ${client.id}: missing or invalid token`);
      client.disconnect();
      return;
    }
    client.data.userId = claims.sub;
    client.data.roles = claims.roles ?? [];
    this.logger.log(`${claims.sub} connected (${client.id})`);
  }

  handleDisconnect(client: Socket) {
    this.logger.log(`${client.data?.userId ?? client.id} disconnected`);
  }

  @SubscribeMessage('join-room')
  async joinRoom(@ConnectedSocket() client: Socket, @MessageBody() body: { roomId: string }) {
    const roomId = roomIdOf(body);
    await client.join(roomId);
    client.to(roomId).emit('user-joined', { userId: client.data.userId, roomId });
    return { success: true };
  }

  @SubscribeMessage('leave-room')
  async leaveRoom(@ConnectedSocket() client: Socket, @MessageBody() body: { roomId: string }) {
    const roomId = roomIdOf(body);
    await client.leave(roomId);
    client.to(roomId).emit('user-left', { userId: client.data.userId, roomId });
    return { success: true };
  }

  @SubscribeMessage('send-message')
  sendMessage(@ConnectedSocket() client: Socket, @MessageBody() body: { roomId: string; content: string }): ChatMessage {
    const roomId = roomIdOf(body);
    const content = body.content;
    if (typeof content !== 'string' || content.trim() === '' || content.length > 4000) {
      throw new WsException('content must be 1 to 4000 characters');
    }
    const message: ChatMessage = {
      id: randomUUID(),
      roomId,
      content,
      senderId: client.data.userId,
      createdAt: new Date().toISOString(),
    };
    this.server.to(roomId).emit('new-message', message);
    return message;
  }

  /** Kept in socket.data: every later handler sees it, on any instance of the app. */
  @SubscribeMessage('set-nickname')
  setNickname(@ConnectedSocket() client: Socket, @MessageBody() body: { nickname: string }) {
    const nickname = body?.nickname;
    if (typeof nickname !== 'string' || nickname.trim() === '' || nickname.length > 32) {
      throw new WsException('nickname must be 1 to 32 characters');
    }
    client.data.nickname = nickname.trim();
    return { nickname: client.data.nickname };
  }

  @SubscribeMessage('whoami')
  whoami(@ConnectedSocket() client: Socket) {
    return { userId: client.data.userId, nickname: client.data.nickname ?? null, socketId: client.id };
  }

  /** A WsResponse: Nest sends `pong` to the client instead of acking. */
  @SubscribeMessage('ping')
  ping(@MessageBody() body: unknown): WsResponse<{ echo: unknown; at: string }> {
    return { event: 'pong', data: { echo: body ?? null, at: new Date().toISOString() } };
  }

  /** Admins only: WsJwtGuard refuses everyone else with a WsException (the ack's error). */
  @UseGuards(WsJwtGuard)
  @Roles('admin')
  @SubscribeMessage('announce')
  announce(@ConnectedSocket() client: Socket, @MessageBody() body: { text: string }) {
    const text = body?.text;
    if (typeof text !== 'string' || text.trim() === '') throw new WsException('text is required');
    this.server.emit('announcement', { text, from: client.data.userId });
    return { sent: true };
  }
}
