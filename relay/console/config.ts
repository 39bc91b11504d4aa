import { z } from 'zod';

export const ConsoleConfig = z
  .object({
    enabled: z.boolean().default(true).describe('Serve the web console at /console/ on the relay port. It needs `api.tokens`: people log in with a token\'s name and the token.'),
    sessionTtlMinutes: z.number().int().min(1).max(24 * 60).default(60).describe('A console session ends this long after login (sessions are in memory: a relay restart logs everyone out).'),
    maxFailedLogins: z.number().int().min(1).max(1000).default(5).describe('Failed logins allowed per remote address within `failedLoginWindowMinutes`; more are refused (429) until the window passes.'),
    failedLoginWindowMinutes: z.number().int().min(1).max(24 * 60).default(15).describe('The window over which failed logins per remote address are counted.'),
  })
  .strict()
  .describe('The web console for the cloud team (relay/console/README.md).');
export type ConsoleConfig = z.infer<typeof ConsoleConfig>;

export const CONSOLE_DEFAULTS: ConsoleConfig = { enabled: true, sessionTtlMinutes: 60, maxFailedLogins: 5, failedLoginWindowMinutes: 15 };
