import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SwitchboardAdapter } from '@switchboard/nestjs';
import { AppModule } from './app.module';

async function bootstrap() {
  const app = await NestFactory.create(AppModule);
  // The one line that differs from a socket.io app (`new IoAdapter(app)` / `new RedisIoAdapter(app)`):
  app.useWebSocketAdapter(new SwitchboardAdapter(app, {
    url: process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8787', // the gateway
    token: process.env.INTERNAL_API_TOKEN ?? '',                  // its internal API token
    secret: process.env.EVENT_HOOK_SECRET ?? '',                  // verifies the hook's calls
    path: '/switchboard/events',                                  // where the hook calls land
  }));
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
  new Logger('Bootstrap').log(`nest-chat listening on ${await app.getUrl()}`);
}

bootstrap().catch((error) => {
  console.error(error);
  process.exit(1);
});
