export { SwitchboardAdapter, DEFAULT_HOOK_PATH } from './adapter';
export type { SwitchboardAdapterOptions, SwitchboardGatewayOptions } from './adapter';
export { SwitchboardNamespace } from './server';
export { SwitchboardSocket } from './socket';
export type { SwitchboardHandshake } from './socket';
export { SwitchboardOperator, SwitchboardRemoteSocket } from './operator';
