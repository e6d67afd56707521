import { Module } from '@nestjs/common';
import { JwtModule } from '@nestjs/jwt';
import { AuthController } from './auth/auth.controller';
import { WsJwtGuard } from './auth/ws-jwt.guard';
import { ChatGateway } from './chat/chat.gateway';
import { OrdersController } from './orders/orders.controller';
import { PresenceGateway } from './presence/presence.gateway';
import { PageController } from './web/page.controller';

@Module({
  imports: [
    JwtModule.registerAsync({
      useFactory: () => {
        const secret = process.env.JWT_SECRET;
        if (!secret) throw new Error('JWT_SECRET is required (the gateway\'s JWT_SECRET: both verify the same tokens)');
        // The gateway's JWT_ISSUER / JWT_AUDIENCE, when it checks them (jsonwebtoken refuses
        // an option that is present but undefined, so each is set only when given).
        const claims = {
          ...(process.env.JWT_ISSUER ? { issuer: process.env.JWT_ISSUER } : {}),
          ...(process.env.JWT_AUDIENCE ? { audience: process.env.JWT_AUDIENCE } : {}),
        };
        return {
          secret,
          signOptions: { algorithm: 'HS256', expiresIn: '1h', ...claims },
          verifyOptions: { algorithms: ['HS256'], ...claims },
        };
      },
    }),
  ],
  controllers: [OrdersController, AuthController, PageController],
  providers: [ChatGateway, PresenceGateway, WsJwtGuard],
})
export class AppModule {}
