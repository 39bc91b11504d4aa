import { HTTP } from 'cloudevents';
import { afterEach, describe, expect, it } from 'vitest';
import { binaryMessage, sign, signedContent, type HttpMessage } from '../../../relay/sinks/webhook/index.js';
import { milestoneEvent } from '../../relay/sinks/salesforce/fixtures.js';
import { WebhookReceiver } from './webhook-receiver.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

async function start(): Promise<WebhookReceiver> {
  const receiver = await WebhookReceiver.start({ secret: SECRET });
  receivers.push(receiver);
  return receiver;
}

function post(receiver: WebhookReceiver, message: HttpMessage, signature?: string): Promise<Response> {
  const now = Math.floor(Date.now() / 1000);
  const headers = { ...message.headers, 'plantlink-signature': signature ?? sign(SECRET, now, signedContent(message.headers, message.body)) };
  return fetch(receiver.url, { method: 'POST', headers, body: message.body });
}

describe('WebhookReceiver', () => {
  it('refuses unsigned requests with 401 and non-POST requests with 405', async () => {
    const receiver = await start();
    const unsigned = await fetch(receiver.url, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: '{}' });
    expect(unsigned.status).toBe(401);
    expect(await unsigned.json()).toMatchObject({ error: 'malformed_header' });
    const get = await fetch(receiver.url);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(receiver.events).toEqual([]);
  });

  it('answers 400 to a signed request that is not a valid CloudEvent', async () => {
    const receiver = await start();
    const message = binaryMessage(milestoneEvent('WO-1', 'released', 1));
    delete message.headers['ce-type'];
    const res = await post(receiver, message);
    expect(res.status).toBe(400);
    expect(receiver.requests[0]!.reason).toBe('parse_error');
  });

  it('percent-decodes binary-mode ce- headers, which the cloudevents SDK alone does not', async () => {
    const receiver = await start();
    const event = { ...milestoneEvent('WO-1', 'released', 1), subject: 'work-order/WO 1 €' };
    const message = binaryMessage(event);

    const sdkAlone = HTTP.toEvent({ headers: message.headers, body: message.body });
    expect((sdkAlone as { subject?: string }).subject).toBe('work-order/WO%201%20%E2%82%AC');

    expect((await post(receiver, message)).status).toBe(200);
    expect(receiver.events[0]!.subject).toBe('work-order/WO 1 €');
  });

  it('counts a replayed request within the tolerance as a duplicate delivery, and refuses it once the tolerance has passed', async () => {
    const receiver = await start();
    const event = milestoneEvent('WO-1', 'released', 1);
    const message = binaryMessage(event);
    const signature = sign(SECRET, Math.floor(Date.now() / 1000), signedContent(message.headers, message.body));

    expect(await (await post(receiver, message, signature)).json()).toEqual({ accepted: 1, duplicates: 0 });
    expect(await (await post(receiver, message, signature)).json()).toEqual({ accepted: 0, duplicates: 1 });
    receiver.setClockSkew(600);
    expect((await post(receiver, message, signature)).status).toBe(401);

    expect(receiver.deliveries(event.source, event.id)).toBe(2);
    expect(receiver.events).toHaveLength(1);
  });
});
