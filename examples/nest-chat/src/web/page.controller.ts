import { Controller, Get, Header, Res } from '@nestjs/common';
import type { Response } from 'express';
import { dirname, join } from 'node:path';

const PUBLIC = join(__dirname, '..', '..', 'public');
/** socket.io-client's browser bundle (its `exports` name package.json, not dist/). */
const CLIENT_BUNDLE = join(dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');

/** The example page, the socket.io client it loads, and where the gateway is. */
@Controller()
export class PageController {
  @Get()
  page(@Res() res: Response) {
    res.sendFile(join(PUBLIC, 'index.html'));
  }

  @Get('socket.io.min.js')
  client(@Res() res: Response) {
    res.sendFile(CLIENT_BUNDLE);
  }

  @Get('config.json')
  @Header('cache-control', 'no-store')
  config() {
    return { gatewayUrl: process.env.PUBLIC_GATEWAY_URL ?? process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8787' };
  }
}
