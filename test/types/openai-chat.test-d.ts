import { describe, expectTypeOf, it } from 'vitest';
import { SessionManager, isMessageFrom, type AdapterMessage, type InboundMessage, type JsonValue } from 'multisession';
import { openaiChat, type OpenAIChatAction, type OpenAIChatMessage, type OpenAIChatReply } from 'multisession/adapters/openai-chat';

describe('openai-chat types', () => {
  const chat = openaiChat();

  it('session.message narrows to the adapter’s envelope with kind, replyId and index', () => {
    const manager = new SessionManager({ adapters: [chat] });
    manager.on('session.message', (e) => {
      if (isMessageFrom(chat, e)) {
        expectTypeOf(e.message).toEqualTypeOf<OpenAIChatMessage>();
        expectTypeOf(e.message.kind).toEqualTypeOf<'delta' | 'reply'>();
        expectTypeOf(e.message.replyId).toEqualTypeOf<string>();
        expectTypeOf(e.message).toExtend<InboundMessage>();
      }
    });
    expectTypeOf<AdapterMessage<typeof chat>>().toEqualTypeOf<OpenAIChatMessage>();
  });

  it('an action needs only text; the reply is JSON', () => {
    expectTypeOf<{ text: string }>().toExtend<OpenAIChatAction>();
    expectTypeOf<{ conversation: string }>().not.toExtend<OpenAIChatAction>();
    expectTypeOf<OpenAIChatReply>().toExtend<JsonValue>();
    expectTypeOf<OpenAIChatReply['usage']>().toEqualTypeOf<{ promptTokens: number; completionTokens: number; totalTokens: number } | null>();
  });
});
