import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ChatGateway } from '../chat/chat.gateway';

/** A plain HTTP endpoint that reaches a user's open sockets, as socket.io apps do with fetchSockets(). */
@Controller('orders')
export class OrdersController {
  constructor(private readonly chat: ChatGateway) {}

  @Post(':userId/update')
  @HttpCode(200)
  async update(@Param('userId') userId: string, @Body() body: { orderId?: string; status?: string }) {
    const sockets = await this.chat.server.fetchSockets();
    const theirs = sockets.filter((socket) => socket.data?.userId === userId);
    for (const socket of theirs) {
      socket.emit('order-update', { orderId: body?.orderId ?? null, status: body?.status ?? 'updated' });
    }
    return { notified: theirs.length };
  }
}
