import { PRIVILEGED_INTENTS, type DiscordIntent } from './intents.js';

/**
 * The gateway refused the session for good (a close code no reconnect fixes: disallowed or
 * invalid intents, sharding, API version), or kept failing. The message says what to change.
 */
export class DiscordGatewayError extends Error {
  /** The gateway's close code, or 0 when the socket did not close with one. */
  readonly closeCode: number;

  constructor(closeCode: number, message: string) {
    super(`Discord gateway: ${message}`);
    this.name = 'DiscordGatewayError';
    this.closeCode = closeCode;
  }
}

/** Close codes after which reconnecting cannot help. */
const FATAL: Record<number, string> = {
  4010: 'Invalid shard: this adapter connects one shard; check the bot',
  4011: 'Sharding required: the bot is in too many guilds for one connection',
  4012: 'Invalid API version',
  4013: 'Invalid intent(s): check config.intents',
};

/**
 * What a close code means for the session: `expired` (4004, the token is refused), `reidentify`
 * (4007 invalid seq, 4009 session timed out: log in afresh), a `DiscordGatewayError` to fail with
 * (4010-4014), or null (resume: 1000/1001 from Discord, a dropped connection, 4000-4003, 4005,
 * 4008 and the rest).
 */
export function closeProblem(code: number, reason: string, intents: readonly DiscordIntent[]): 'expired' | 'reidentify' | DiscordGatewayError | null {
  if (code === 4004) return 'expired';
  if (code === 4007 || code === 4009) return 'reidentify';
  if (code === 4014) {
    const privileged = intents.filter((i) => PRIVILEGED_INTENTS.includes(i));
    const which = privileged.length ? `the privileged intent(s) ${privileged.join(', ')} requested in config.intents` : 'a privileged intent';
    return new DiscordGatewayError(
      4014,
      `closed with 4014 (Disallowed intent(s)): this bot may not use ${which}; switch ${privileged.length > 1 ? 'them' : 'it'} on in the Developer Portal (your application → Bot → Privileged Gateway Intents) or remove ${privileged.length > 1 ? 'them' : 'it'} from config.intents`,
    );
  }
  const fatal = FATAL[code];
  if (fatal) return new DiscordGatewayError(code, `closed with ${code} (${fatal}${reason ? `; ${reason}` : ''})`);
  return null;
}
