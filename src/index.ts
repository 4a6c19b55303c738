/**
 * Silk as a library: start a node in-process, mint tokens, and the shared
 * vocabulary (errors, close codes, configuration).
 */
export { startNode, type SilkNode, type NodeOptions, type NodeState } from './node.js';
export { validateConfig, DEFAULTS, DEFAULT_LIMITS, ConfigError, type Config, type AppConfig, type Limits } from './config.js';
export { signToken, verifyToken, type Grant } from './auth/tokens.js';
export { SilkError, ErrorCodes, type ErrorCode } from './core/errors.js';
export { CloseCode, Disconnects, policyOf, type Disconnect, type DisconnectReason, type RetryPolicy } from './protocol/codes.js';
