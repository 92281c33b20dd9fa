import { randomUUID } from 'node:crypto';
import type { Checkpoint } from '../../checkpoint/checkpoint.js';
import { MultisessionError, OwnerUnavailableError, type ErrorCode } from '../../errors.js';
import type { Clock, JsonObject, JsonValue } from '../../types.js';

/** What a node asks of the node that runs a session. */
export type RemoteOp = 'send' | 'submitAuth' | 'status' | 'logs' | 'restart' | 'logout' | 'touch' | 'drain';

/** A command as it travels in the owner's checkpoint stream. */
interface Command {
  op: RemoteOp;
  id: string;
  args: JsonValue[];
  from: string;
}

/** The answer stored as the command's result. */
type Answer = { ok: true; value: JsonValue } | { ok: false; error: { name: string; code: string; message: string; context: JsonObject } };

/** Commands a node takes per claim. */
const BATCH = 32;
/** Answered commands are purged after this long. */
const KEEP_MS = 60_000;

/** The command stream of a node. */
export const commandStream = (nodeId: string): string => `multisession.commands.${nodeId}`;

export interface CommandDeps {
  nodeId: string;
  clock: Clock;
  /** The checkpoint of a stream on the manager's store. */
  stream: (name: string) => Checkpoint;
  /** Runs a command on a session of this node (the manager's own method). */
  execute: (op: RemoteOp, id: string, args: JsonValue[]) => Promise<JsonValue | undefined>;
  onError: (error: unknown) => void;
  pollMs: number;
  timeoutMs: number;
}

/**
 * The channel that carries `send`, `submitAuth`, `status`, `logs`, `restart`, `logout` and `touch`
 * from a node to the node that runs the session: each node serves its own checkpoint stream
 * (fenced claims, so a command is run once even if its owner changes), and the caller polls the
 * command's item for the answer. The added latency is about one poll on each side.
 */
export class CommandChannel {
  readonly #d: CommandDeps;
  readonly #own: Checkpoint;
  #timer: unknown = null;
  #closed = false;
  #lastPurge = 0;

  constructor(deps: CommandDeps) {
    this.#d = deps;
    this.#own = deps.stream(commandStream(deps.nodeId));
  }

  /** Serves this node's stream until `close()`. */
  start(): void {
    this.#schedule(0);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) this.#d.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Runs `op` on `nodeId` and returns its answer; `OwnerUnavailableError` when none comes in time. */
  async call(nodeId: string, op: RemoteOp, id: string, args: JsonValue[]): Promise<JsonValue | undefined> {
    const d = this.#d;
    const cp = d.stream(commandStream(nodeId));
    const key = randomUUID();
    const command: Command = { op, id, args, from: d.nodeId };
    await cp.add([{ key, payload: command as unknown as JsonValue }]);
    const deadline = d.clock.now() + d.timeoutMs;
    for (;;) {
      const item = await cp.get(key);
      if (item?.status === 'done') return unwrap(item.result as Answer | null);
      if (item?.status === 'dead') throw new OwnerUnavailableError(id, nodeId, `the command failed there: ${item.error ?? 'unknown error'}`);
      if (d.clock.now() >= deadline) {
        throw new OwnerUnavailableError(id, nodeId, `no answer to ${op} within ${d.timeoutMs} ms (cluster.commandTimeoutMs)`);
      }
      await new Promise<void>((resolve) => d.clock.setTimeout(resolve, Math.min(d.pollMs, 25)));
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = this.#d.clock.setTimeout(() => {
      void this.#serve()
        .catch(this.#d.onError)
        .then((busy) => this.#schedule(busy ? 0 : this.#d.pollMs));
    }, ms);
  }

  /** Runs the commands waiting for this node; true when there may be more. */
  async #serve(): Promise<boolean> {
    const d = this.#d;
    const leases = await this.#own.claim({ owner: d.nodeId, limit: BATCH, leaseMs: Math.max(d.timeoutMs, 1_000) });
    await Promise.all(
      leases.map(async (lease) => {
        const c = lease.payload as unknown as Command;
        let answer: Answer;
        try {
          answer = { ok: true, value: (await d.execute(c.op, c.id, c.args)) ?? null };
        } catch (error) {
          answer = { ok: false, error: errorData(error) };
        }
        await this.#own.complete(lease, answer as unknown as JsonValue).catch(d.onError);
      }),
    );
    const now = d.clock.now();
    if (now - this.#lastPurge > KEEP_MS) {
      this.#lastPurge = now;
      await this.#own.purge({ status: 'done', olderThanMs: KEEP_MS }).catch(d.onError);
    }
    return leases.length === BATCH;
  }
}

function errorData(error: unknown): { name: string; code: string; message: string; context: JsonObject } {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = error instanceof MultisessionError ? error.code : 'ERROR';
  const context = error instanceof MultisessionError ? (JSON.parse(JSON.stringify(error.context)) as JsonObject) : {};
  return { name: e.name, code, message: e.message, context };
}

/** The owner's answer, or its error raised here with the same name, code and message. */
function unwrap(answer: Answer | null): JsonValue | undefined {
  if (!answer) return undefined;
  if (answer.ok) return answer.value ?? undefined;
  const err = new MultisessionError(answer.error.code as ErrorCode, answer.error.message, { context: answer.error.context });
  Object.defineProperty(err, 'name', { value: answer.error.name });
  throw err;
}
