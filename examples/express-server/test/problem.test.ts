import { describe, expect, it } from 'vitest';
import { RateLimitError, SessionNotFoundError } from 'multisession';
import { toProblem } from '../src/problem.js';

describe('problem documents for library errors', () => {
  it("a session's own rate limit is a 429 with Retry-After in whole seconds", () => {
    const { problem, headers } = toProblem(new RateLimitError('bot-1', 2_500, 1_000), '/api/v1/sessions/bot-1/messages');
    expect(problem).toMatchObject({ status: 429, code: 'RATE_LIMITED', title: 'Too Many Requests' });
    expect(headers).toEqual({ 'Retry-After': '3' });
  });

  it('other errors carry no Retry-After', () => {
    const { problem, headers } = toProblem(new SessionNotFoundError('nope'), '/api/v1/sessions/nope');
    expect(problem.status).toBe(404);
    expect(headers).toEqual({});
  });
});
