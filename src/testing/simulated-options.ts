import { z } from 'zod';
import type { HealthReport } from '../adapters/contract.js';
import { HEALTH_STATUSES, type HealthStatus } from '../lifecycle.js';
import { systemClock, type Clock } from '../types.js';
import { clockSchema } from '../validation.js';

/** A health step of the script: a bare status or a full report. */
export type SimulatedHealthStep = HealthStatus | HealthReport;

/** Options of {@link simulatedAdapter}. */
export interface SimulatedAdapterOptions {
  /** Platform name sessions refer to. Default `simulated`. */
  name?: string;
  description?: string;
  /**
   * How a session logs in. `none` (default): at once. `qr`: shows a QR code whose data is
   * `multisession-demo:<session id>:<6-digit code>` and waits until the code is submitted
   * (`manager.submitAuth(id, { kind: 'code', value: code })`, which is what "scanning" it means).
   * `code` / `password`: asks with `ctx.auth.request(kind)` and checks the answer against
   * `expectedCode` / `expectedPassword`.
   */
  auth?: 'none' | 'qr' | 'code' | 'password';
  /** The code a `code` login expects. Default `'12345'`. */
  expectedCode?: string;
  /** The password a `password` login expects. Default `'secret'`. */
  expectedPassword?: string;
  /** QR login: accept any submitted value instead of only the QR's code. */
  acceptAnyCode?: boolean;
  /** QR login: how long a QR code is valid (its `expiresAt`). Default 60,000. */
  qrTtlMs?: number;
  /** QR login: show a fresh QR code (new code) each time one expires, as WhatsApp does. */
  rotateQr?: boolean;
  /** Wrong answers to a code/password request before start() rejects. Default 3. */
  authAttempts?: number;
  /** Remember a completed login in `ctx.authState`, so the next start skips the QR/code step. */
  remember?: boolean;
  /** Delay before start() proceeds, in ms (real, unref'd timer; aborted by ctx.signal). */
  startDelayMs?: number;
  /** Delay of stop(), in ms. */
  stopDelayMs?: number;
  /**
   * What health() reports, check after check (counted per session id across restarts):
   * an array of steps, or a function of the check number (from 0). Default: always healthy.
   */
  health?: readonly SimulatedHealthStep[] | ((n: number, info: { sessionId: string; start: number }) => SimulatedHealthStep);
  /** With an array script: `hold` the last step (default) or `cycle` through the script again. */
  healthMode?: 'hold' | 'cycle';
  /** The first N start attempts of each session reject (counted per session id). */
  failStarts?: number;
  /** start() never resolves (until ctx.signal aborts it). */
  hangOnStart?: boolean;
  /** health() never resolves (until ctx.signal aborts it). */
  hangOnHealth?: boolean;
  /** send() rejects (with this message when a string). */
  throwOnSend?: boolean | string;
  /** Every sent action comes back as an inbound message through `ctx.emitMessage`. */
  echo?: boolean;
  /** When false, sessions may omit credentials. Default true. */
  requireCredentials?: boolean;
  /**
   * Once ready, the connection drops after this many ms (real, unref'd timer): the adapter calls
   * `ctx.fail(…)`, as a socket closing would, and the manager restarts it with back-off.
   */
  disconnectAfterMs?: number;
  /** While ready, an inbound message `{ from: 'peer', text, n }` arrives every this many ms. */
  inboundEveryMs?: number;
  /**
   * The clock of every delay and timer above (start/stop delays, QR rotation, disconnects,
   * inbound traffic): pass the manager's manual clock to drive them by hand. Default: real time
   * (unref'd timers).
   */
  clock?: Clock;
  /**
   * Tokens the platform refuses, like a revoked bot token: start() calls
   * `ctx.expired('token rejected')` and rejects.
   */
  rejectTokens?: readonly string[];
}

export const healthStepSchema = z.union([
  z.enum(HEALTH_STATUSES),
  z.strictObject({ status: z.enum(HEALTH_STATUSES), detail: z.string().optional() }),
]);

export const optionsSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  auth: z.enum(['none', 'qr', 'code', 'password']).default('none'),
  expectedCode: z.string().min(1).default('12345'),
  expectedPassword: z.string().min(1).default('secret'),
  acceptAnyCode: z.boolean().default(false),
  qrTtlMs: z.number().int().positive().default(60_000),
  rotateQr: z.boolean().default(false),
  authAttempts: z.number().int().positive().default(3),
  remember: z.boolean().default(false),
  startDelayMs: z.number().int().min(0).default(0),
  stopDelayMs: z.number().int().min(0).default(0),
  health: z
    .union([
      z.array(healthStepSchema).min(1, 'give at least one step'),
      z.custom<(n: number, info: { sessionId: string; start: number }) => SimulatedHealthStep>((v) => typeof v === 'function', 'must be an array or a function'),
    ])
    .optional(),
  healthMode: z.enum(['hold', 'cycle']).default('hold'),
  failStarts: z.number().int().min(0).default(0),
  hangOnStart: z.boolean().default(false),
  hangOnHealth: z.boolean().default(false),
  throwOnSend: z.union([z.boolean(), z.string()]).default(false),
  echo: z.boolean().default(false),
  requireCredentials: z.boolean().default(true),
  rejectTokens: z.array(z.string()).default([]),
  disconnectAfterMs: z.number().int().positive().optional(),
  inboundEveryMs: z.number().int().positive().optional(),
  clock: clockSchema.default(systemClock),
});

/** The options as parsed: defaults applied. */
export type ResolvedOptions = z.output<typeof optionsSchema>;
