import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { CloudEventV1 } from '../../../../protocols/events/envelope.js';
import { PermanentError, TransientError } from '../../../../protocols/errors.js';
import { createLogger, type Logger } from '../../../../protocols/log.js';
import { WebhookSink, type WebhookSinkConfigInput } from '../../../../relay/sinks/webhook/index.js';
import type { DeliveryItem, Outcome } from '../../../../relay/sinks/sink.js';
import { WebhookReceiver, type ReceivedEvent, type WebhookReceiverOptions } from '../../../emulators/webhook/webhook-receiver.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = createLogger('webhook-sink-test', { level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, text: () => lines.join('') };
}

async function setup(
  options: { sink?: Partial<WebhookSinkConfigInput>; receiver?: Partial<WebhookReceiverOptions> } = {},
): Promise<{ receiver: WebhookReceiver; sink: WebhookSink; logs: () => string }> {
  const receiver = await WebhookReceiver.start({ secret: SECRET, ...options.receiver });
  const { logger, text } = captureLogger();
  const sink = new WebhookSink({ name: 'hooks', kind: 'webhook', url: receiver.url, secret: SECRET, timeoutMs: 5_000, ...options.sink }, logger);
  await sink.start();
  cleanups.push(async () => {
    await sink.stop();
    await receiver.stop();
  });
  return { receiver, sink, logs: text };
}

const fresh = (...events: CloudEventV1[]): DeliveryItem[] => events.map((event) => ({ event, stale: false }));

function expectDelivered(outcome: Outcome | undefined): void {
  if (outcome?.status !== 'delivered') throw new Error(`expected delivered, got ${JSON.stringify(outcome)}`);
}

function expectErrored(outcome: Outcome | undefined): TransientError {
  if (outcome?.status !== 'errored') throw new Error(`expected errored, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(TransientError);
  return outcome.error;
}

function expectRejected(outcome: Outcome | undefined): PermanentError {
  if (outcome?.status !== 'rejected') throw new Error(`expected rejected, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(PermanentError);
  return outcome.error;
}

/** The attributes a receiver sees through the SDK, for comparison with what was sent. */
function attributes(received: ReceivedEvent | undefined): Record<string, unknown> {
  if (!received) throw new Error('event not received');
  const e = received.event as unknown as Record<string, unknown>;
  return { id: e.id, source: e.source, type: e.type, subject: e.subject, time: e.time, plant: e.plant, plantseq: e.plantseq, correlationid: e.correlationid, data: e.data };
}

function sent(event: CloudEventV1, plantseq: unknown = event.plantseq): Record<string, unknown> {
  return { id: event.id, source: event.source, type: event.type, subject: event.subject, time: event.time, plant: event.plant, plantseq, correlationid: event.correlationid, data: event.data };
}

describe('WebhookSink, structured mode (default)', () => {
  it('round-trips events through the cloudevents SDK with id, source, type, subject, time, extensions and data intact', async () => {
    const { receiver, sink } = await setup();
    const events = [milestoneEvent('WO-1', 'released', 1), shipmentEvent('SH-1', 'shipped', 2)];

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    expect(receiver.requests.map((r) => [r.mode, r.headers['content-type'], r.status])).toEqual([
      ['structured', 'application/cloudevents+json', 200],
      ['structured', 'application/cloudevents+json', 200],
    ]);
    for (const event of events) {
      const received = receiver.received(event.source, event.id);
      expect(attributes(received)).toEqual(sent(event));
      expect(received!.event.specversion).toBe('1.0');
      expect((received!.event as unknown as Record<string, unknown>).plantstale).toBeUndefined();
    }
  });

  it('a stale item is still delivered, marked with the extension attribute plantstale: true', async () => {
    const { receiver, sink } = await setup();
    const older = milestoneEvent('WO-1', 'started', 2);

    expectDelivered((await sink.deliver([{ event: older, stale: true }]))[0]);

    expect((receiver.received(older.source, older.id)!.event as unknown as Record<string, unknown>).plantstale).toBe(true);
  });

  it('redelivery of a delivered batch is accepted and seen by the receiver as duplicates, not new events', async () => {
    const { receiver, sink } = await setup();
    const events = [milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-2', 'completed', 3)];
    (await sink.deliver(fresh(...events))).forEach(expectDelivered);

    // As the engine redelivers after a crash between the receiver's 2xx and its own commit.
    const again = await sink.deliver([{ event: events[0]!, stale: true }, ...fresh(events[1]!, events[2]!)]);

    again.forEach(expectDelivered);
    // Subjects run concurrently, so arrival order across subjects is not fixed.
    expect(receiver.events.map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    for (const event of events) expect(receiver.deliveries(event.source, event.id)).toBe(2);
    expect(receiver.stats()).toMatchObject({ accepted: 3, duplicates: 3 });
  });

  it('sends items of the same subject in batch order while other subjects run concurrently', async () => {
    const { receiver, sink } = await setup({ sink: { concurrency: 4 } });
    receiver.setLatency(5);
    const arrivals = new Map<string, string[]>();
    receiver.on('event', ({ event }) => {
      const list = arrivals.get(event.subject!) ?? [];
      list.push(event.id);
      arrivals.set(event.subject!, list);
    });
    const steps = ['released', 'started', 'quantity-reported', 'held', 'resumed', 'completed'] as const;
    const events = steps.flatMap((milestone, i) => [milestoneEvent('WO-A', milestone, i * 10), milestoneEvent(`WO-B${i % 2}`, 'released', i * 10 + 1), milestoneEvent('WO-C', milestone, i * 10 + 2)]);

    (await sink.deliver(fresh(...events))).forEach(expectDelivered);

    for (const [subject, ids] of arrivals) expect(ids, subject).toEqual(events.filter((e) => e.subject === subject).map((e) => e.id));
    expect(receiver.events).toHaveLength(events.length);
    expect(receiver.stats().maxInFlight).toBeGreaterThan(1);
    expect(receiver.stats().maxInFlight).toBeLessThanOrEqual(4);
  });

  it('sends only the configured eventTypes; the others are acknowledged without a request', async () => {
    const { receiver, sink } = await setup({ sink: { eventTypes: ['com.plantlink.production.milestone.v1'] } });
    const milestone = milestoneEvent('WO-1', 'released', 1);

    const outcomes = await sink.deliver(fresh(shipmentEvent('SH-1', 'packed', 1), milestone));

    outcomes.forEach(expectDelivered);
    expect(receiver.events.map((e) => e.id)).toEqual([milestone.id]);
    expect(receiver.stats().requests).toBe(1);
  });
});

describe('WebhookSink, binary mode', () => {
  it('round-trips events through the cloudevents SDK: attributes in ce- headers, data as the JSON body', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'binary' } });
    const events = [milestoneEvent('WO-1', 'released', 1), shipmentEvent('SH-1', 'shipped', 2)];

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    const [first] = receiver.requests;
    expect(first).toMatchObject({ mode: 'binary', status: 200 });
    expect(first!.headers).toMatchObject({
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': events[0]!.id,
      'ce-source': events[0]!.source,
      'ce-type': events[0]!.type,
      'ce-subject': events[0]!.subject,
      'ce-time': events[0]!.time,
      'ce-plant': 'P1',
      'ce-plantseq': String(events[0]!.plantseq),
      'ce-correlationid': events[0]!.correlationid,
    });
    expect(JSON.parse(first!.body)).toEqual(events[0]!.data);
    for (const event of events) {
      // A header has no types: plantseq arrives as its canonical string.
      expect(attributes(receiver.received(event.source, event.id))).toEqual(sent(event, String(event.plantseq)));
    }
  });

  it('percent-encodes attribute values that are not printable ASCII, and the receiver gets the original strings back', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'binary' } });
    const base = milestoneEvent('WO-1', 'released', 1);
    const event: CloudEventV1 = { ...base, subject: 'work-order/WO 7 "Zürich" 100% €😀', operator: 'Jürgen Groß' };

    expectDelivered((await sink.deliver(fresh(event)))[0]);

    expect(receiver.requests[0]!.headers).toMatchObject({
      'ce-subject': 'work-order/WO%207%20%22Z%C3%BCrich%22%20100%25%20%E2%82%AC%F0%9F%98%80',
      'ce-operator': 'J%C3%BCrgen%20Gro%C3%9F',
    });
    const received = receiver.received(event.source, event.id)!.event as unknown as Record<string, unknown>;
    expect(received.subject).toBe(event.subject);
    expect(received.operator).toBe('Jürgen Groß');
  });

  it('a stale item carries ce-plantstale: true', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'binary' } });
    const older = milestoneEvent('WO-1', 'started', 2);

    expectDelivered((await sink.deliver([{ event: older, stale: true }]))[0]);

    expect(receiver.requests[0]!.headers['ce-plantstale']).toBe('true');
  });

  it('an attribute no header can carry (an object) is rejected without a request', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'binary' } });
    const event: CloudEventV1 = { ...milestoneEvent('WO-1', 'released', 1), shift: { id: 2 } };

    const error = expectRejected((await sink.deliver(fresh(event)))[0]);

    expect(error.code).toBe('unmappable_attribute');
    expect(error.message).toContain('"shift"');
    expect(receiver.stats().requests).toBe(0);
  });

  it('a ce- header altered in transit fails the signature: 401, retried later (no event is at fault)', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'binary' } });
    receiver.tamperNext(1, ({ headers, body }) => ({ headers: { ...headers, 'ce-subject': 'work-order/WO-666' }, body }));

    const error = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);

    expect(error.message).toContain('HTTP 401');
    expect(error.retryAfterMs).toBe(60_000);
    expect(receiver.requests[0]!.reason).toBe('signature_mismatch');
    expect(receiver.events).toEqual([]);
  });
});

describe('WebhookSink, batch mode', () => {
  it('sends application/cloudevents-batch+json requests of at most batchSize events, in order, parsed by the SDK', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'batch', batchSize: 2 } });
    const events = [1, 2, 3, 4, 5].map((i) => milestoneEvent(`WO-${i}`, 'released', i));

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    expect(receiver.requests.map((r) => [r.mode, r.headers['content-type'], JSON.parse(r.body).length])).toEqual([
      ['batch', 'application/cloudevents-batch+json', 2],
      ['batch', 'application/cloudevents-batch+json', 2],
      ['batch', 'application/cloudevents-batch+json', 1],
    ]);
    expect(receiver.events.map((e) => e.id)).toEqual(events.map((e) => e.id));
    for (const event of events) expect(attributes(receiver.received(event.source, event.id))).toEqual(sent(event));
  });

  it('a batch refused for one event (422) is split until only that event is rejected; its neighbours are delivered', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'batch' } });
    const events = [1, 2, 3, 4, 5].map((i) => milestoneEvent(`WO-${i}`, 'released', i));
    const poison = events[3]!;
    receiver.rejectEvents((e) => e.id === poison.id, 422);

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach((outcome, i) => (i === 3 ? expect(expectRejected(outcome).code).toBe('http_422') : expectDelivered(outcome)));
    expect(receiver.events.map((e) => e.id)).toEqual(events.filter((e) => e !== poison).map((e) => e.id));
  });

  it('503 on a batch: every event of it and of later batches is errored with the retry hint', async () => {
    const { receiver, sink } = await setup({ sink: { mode: 'batch', batchSize: 2 } });
    receiver.failNext(1, 503, { 'Retry-After': '7' });

    const outcomes = await sink.deliver(fresh(...[1, 2, 3].map((i) => milestoneEvent(`WO-${i}`, 'released', i))));

    expect(outcomes.map((o) => expectErrored(o).retryAfterMs)).toEqual([7_000, 7_000, 7_000]);
    expect(expectErrored(outcomes[2]).message).toMatch(/^not attempted/);
    expect(receiver.stats().requests).toBe(1);
  });
});

describe('WebhookSink signatures', () => {
  it('signs every request so the receiver verifies it with the shared secret', async () => {
    const { receiver, sink } = await setup();

    (await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)))).forEach(expectDelivered);

    for (const request of receiver.requests) expect(request.headers['plantlink-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(receiver.stats().status).toEqual({ 200: 2 });
  });

  it('signs exactly as the README says: "<t>.<body>" in structured mode, "<t>." + ce- header block + body in binary mode', async () => {
    const structured = await setup();
    const binary = await setup({ sink: { mode: 'binary' } });
    const event = milestoneEvent('WO-1', 'released', 1);
    expectDelivered((await structured.sink.deliver(fresh(event)))[0]);
    expectDelivered((await binary.sink.deliver(fresh(event)))[0]);

    const hmac = (t: string, content: string): string => createHmac('sha256', SECRET).update(`${t}.${content}`, 'utf8').digest('hex');
    const [s] = structured.receiver.requests;
    const [, st, sv1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(s!.headers['plantlink-signature']))!;
    expect(sv1).toBe(hmac(st!, s!.body));

    const [b] = binary.receiver.requests;
    const [, bt, bv1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(b!.headers['plantlink-signature']))!;
    const block = Object.keys(b!.headers)
      .filter((name) => name === 'content-type' || name.startsWith('ce-'))
      .sort()
      .map((name) => `${name}:${String(b!.headers[name])}\n`)
      .join('');
    expect(block.split('\n')[0]).toBe(`ce-correlationid:${event.correlationid}`);
    expect(bv1).toBe(hmac(bt!, `${block}\n${b!.body}`));
  });

  it('a body altered in transit fails the signature: 401, retried later, nothing recorded', async () => {
    const { receiver, sink } = await setup();
    receiver.tamperNext(1, ({ headers, body }) => ({ headers, body: Buffer.from(body.toString('utf8').replace('"released"', '"completed"')) }));

    const error = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);

    expect(error.message).toContain('HTTP 401');
    expect(error.message).toContain('signature_mismatch');
    expect(receiver.events).toEqual([]);
  });

  it('a sink with another secret is refused with 401', async () => {
    const { sink } = await setup({ receiver: { secret: 'another-secret-0123456789abcdef0123456789' } });

    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).message).toContain('HTTP 401');
  });

  it('a receiver whose clock is past the tolerance refuses the timestamp with 401', async () => {
    const { receiver, sink } = await setup();
    receiver.setClockSkew(301);

    expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);

    expect(receiver.requests[0]!.reason).toBe('timestamp_out_of_tolerance');
  });
});

describe('WebhookSink failures', () => {
  it('503 with Retry-After: the item is errored with retryAfterMs and the rest of the batch is not attempted', async () => {
    const { receiver, sink } = await setup({ sink: { concurrency: 1 } });
    receiver.failNext(1, 503, { 'Retry-After': '5' });

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));

    const first = expectErrored(outcomes[0]);
    expect(first.retryAfterMs).toBe(5_000);
    expect(first.message).toContain('HTTP 503');
    const second = expectErrored(outcomes[1]);
    expect(second.message).toMatch(/^not attempted/);
    expect(second.retryAfterMs).toBe(5_000);
    expect(receiver.stats().requests).toBe(1);

    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-3', 'released', 3))))[0]);
  });

  it('429 with Retry-After is errored with retryAfterMs', async () => {
    const { receiver, sink } = await setup();
    receiver.failNext(1, 429, { 'Retry-After': '2' });

    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).retryAfterMs).toBe(2_000);
  });

  it('other 4xx are rejected with the status and an excerpt of the answer', async () => {
    const { receiver, sink } = await setup();
    receiver.failNext(1, 400, {}, `field workOrder is not known here ${'x'.repeat(500)}`);

    const error = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);

    expect(error.code).toBe('http_400');
    expect(error.message).toMatch(/HTTP 400: field workOrder is not known here x+\.\.\.$/);
    expect(error.message.length).toBeLessThan(400);
  });

  it('a redirect is not followed: rejected', async () => {
    const { receiver, sink } = await setup();
    receiver.failNext(1, 307, { Location: 'https://elsewhere.example/hook' });

    expect(expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).code).toBe('http_307');
    expect(receiver.stats().requests).toBe(1);
  });

  it('a receiver that closes the connection without answering gives errored', async () => {
    const { receiver, sink } = await setup();
    receiver.setOutage(true);

    expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    receiver.setOutage(false);
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });

  it('no answer within timeoutMs gives errored', async () => {
    const { receiver, sink } = await setup({ sink: { timeoutMs: 100 } });
    receiver.setLatency(1_000);

    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).message).toContain('no answer within 100 ms');
  });

  it('stop() aborts requests in flight: their items end errored, and later deliveries are errored', async () => {
    const { receiver, sink } = await setup();
    receiver.setLatency(5_000);

    const pending = sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    while (receiver.stats().requests === 0) await new Promise((r) => setTimeout(r, 5));
    await sink.stop();

    expect(expectErrored((await pending)[0]).message).toContain('aborted because the sink is stopping');
    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2))))[0]).message).toContain('stopped');
  });

  it('never logs the secret, the static headers or the URL path', async () => {
    const { receiver, sink, logs } = await setup({ sink: { headers: { Authorization: 'Bearer static-token-value' } } });
    receiver.failNext(1, 503);
    receiver.failNext(1, 400);
    await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));

    expect(receiver.requests[0]!.headers.authorization).toBe('Bearer static-token-value');
    expect(logs()).toContain('event rejected by webhook');
    expect(logs()).not.toContain(SECRET);
    expect(logs()).not.toContain('static-token-value');
    expect(logs()).not.toContain('/hooks/plantlink');
  });
});
