import { SetMetadata } from '@nestjs/common';

export const ROLES_KEY = 'roles';
/** The roles a handler needs (checked by WsJwtGuard). */
export const Roles = (...roles: string[]) => SetMetadata(ROLES_KEY, roles);
