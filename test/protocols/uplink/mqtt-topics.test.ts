import { describe, expect, it } from 'vitest';
import { acksTopic, eventsTopic, isTopicLevel, parseEventsTopic, sharedEventsFilter } from '../../../protocols/uplink/mqtt-topics.js';

describe('MQTT uplink topics', () => {
  it('names an agent\'s topics by plant and agent id, and reads them back', () => {
    expect(eventsTopic('plant-a', 'agent-a')).toBe('plantlink/v1/plant-a/agent-a/events');
    expect(acksTopic('plant-a', 'agent-a')).toBe('plantlink/v1/plant-a/agent-a/acks');
    expect(parseEventsTopic('plantlink/v1/plant-a/agent-a/events')).toEqual({ plant: 'plant-a', agentId: 'agent-a' });
    expect(sharedEventsFilter('relays')).toBe('$share/relays/plantlink/v1/+/+/events');
  });

  it('reads nothing from topics that are not events topics, or have empty levels', () => {
    for (const topic of ['plantlink/v1/plant-a/agent-a/acks', 'plantlink/v2/plant-a/agent-a/events', 'plantlink/v1/plant-a/x/agent-a/events', 'plantlink/v1//agent-a/events', 'other/v1/p/a/events']) {
      expect(parseEventsTopic(topic), topic).toBeUndefined();
    }
  });

  it('accepts as a topic level only names without /, + or #', () => {
    expect(isTopicLevel('Werk Süd-3')).toBe(true);
    for (const bad of ['', 'a/b', 'a+', '#', 'x\u0000']) expect(isTopicLevel(bad), JSON.stringify(bad)).toBe(false);
  });
});
