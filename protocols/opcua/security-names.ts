/**
 * The names of OPC UA security modes and policies, without node-opcua.
 *
 * Config schemas import these; importing node-opcua itself would load its crypto
 * module, which on Node 20 prints a warning to stdout at import time and would
 * corrupt the JSON that CLI commands such as `agent status` print.
 */
export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export type OpcUaSecurityModeName = (typeof SECURITY_MODES)[number];
/** The policies node-opcua 2.182 implements that are not deprecated by OPC UA (1.04+). */
export const SECURITY_POLICIES = ['Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] as const;
export type OpcUaSecurityPolicyName = (typeof SECURITY_POLICIES)[number];

export type OpcUaSecurity = { mode: 'None' } | { mode: 'Sign' | 'SignAndEncrypt'; policy: OpcUaSecurityPolicyName };
/** The password is only ever handed to node-opcua, which encrypts it for the server. */
export type OpcUaIdentity = { type: 'anonymous' } | { type: 'username'; userName: string; password: string };

