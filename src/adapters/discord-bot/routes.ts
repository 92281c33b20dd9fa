import type { RestRequest } from './rest.js';
import type { DiscordBotAction } from './schemas.js';

/**
 * The REST call of a `send` action. The route keeps the major parameter (the channel) and
 * replaces the other ids, as Discord's rate limits count them.
 */
export function requestOf(action: DiscordBotAction): RestRequest {
  switch (action.method) {
    case 'createMessage': {
      const { method: _m, channel_id, ...body } = action;
      return { verb: 'POST', path: `/channels/${channel_id}/messages`, route: `POST /channels/${channel_id}/messages`, body };
    }
    case 'editMessage': {
      const { method: _m, channel_id, message_id, ...body } = action;
      return { verb: 'PATCH', path: `/channels/${channel_id}/messages/${message_id}`, route: `PATCH /channels/${channel_id}/messages/:id`, body };
    }
    case 'deleteMessage':
      return { verb: 'DELETE', path: `/channels/${action.channel_id}/messages/${action.message_id}`, route: `DELETE /channels/${action.channel_id}/messages/:id` };
    case 'triggerTyping':
      return { verb: 'POST', path: `/channels/${action.channel_id}/typing`, route: `POST /channels/${action.channel_id}/typing` };
    case 'createReaction':
      return {
        verb: 'PUT',
        path: `/channels/${action.channel_id}/messages/${action.message_id}/reactions/${encodeURIComponent(action.emoji)}/@me`,
        route: `PUT /channels/${action.channel_id}/messages/:id/reactions/:emoji/@me`,
      };
    case 'createDM':
      return { verb: 'POST', path: '/users/@me/channels', route: 'POST /users/@me/channels', body: { recipient_id: action.recipient_id } };
  }
}

/** `GET /gateway/bot`: the gateway URL and how many logins (IDENTIFY) the bot has left. */
export const GATEWAY_BOT: RestRequest = { verb: 'GET', path: '/gateway/bot', route: 'GET /gateway/bot' };
/** `GET /users/@me`: the bot's own user; the health probe. */
export const CURRENT_USER: RestRequest = { verb: 'GET', path: '/users/@me', route: 'GET /users/@me', probe: true };
