import { BadRequestException, Body, Controller, HttpCode, NotFoundException, Post } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';

/**
 * Demo sign-in for the example page: a token for any user id, no password. Turn it off with
 * DEMO_LOGIN=false; a real app signs its users in its own way and issues the same HS256 tokens.
 */
@Controller('auth')
export class AuthController {
  constructor(private readonly jwt: JwtService) {}

  @Post('login')
  @HttpCode(200)
  async login(@Body() body: { userId?: unknown; roles?: unknown }) {
    if (process.env.DEMO_LOGIN === 'false') throw new NotFoundException();
    const userId = body?.userId;
    if (typeof userId !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(userId)) {
      throw new BadRequestException('userId: 1 to 64 letters, digits, - or _');
    }
    const roles = Array.isArray(body.roles) ? body.roles.filter((role): role is string => typeof role === 'string') : [];
    return { token: await this.jwt.signAsync({ sub: userId, roles }) };
  }
}
