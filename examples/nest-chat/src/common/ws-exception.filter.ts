import { ArgumentsHost, Catch, Logger } from '@nestjs/common';
import { BaseWsExceptionFilter, WsException } from '@nestjs/websockets';
import type { Socket } from 'socket.io';

/** Logs refused messages, then answers as Nest does: `exception` {status, message} to the client. */
@Catch(WsException)
export class WsExceptionFilter extends BaseWsExceptionFilter {
  private readonly logger = new Logger('WsExceptionFilter');

  catch(exception: WsException, host: ArgumentsHost) {
    const client = host.switchToWs().getClient<Socket>();
    const error = exception.getError();
    const message = typeof error === 'string' ? error : JSON.stringify(error);
    this.logger.warn(`refused a message from ${client.data?.userId ?? client.id}: ${message}`);
    super.catch(exception, host);
  }
}
