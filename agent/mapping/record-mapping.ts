/**
 * One declarative mapping language for every source: how a record the plant gave us (a CSV
 * row, an XML element, a SOAP response item, a JSON line) becomes a canonical event.
 *
 * Each value is a JSONata expression (https://jsonata.org) over the record; a plain path
 * such as `ShipmentNo` or `Header.Order.Id` is evaluated directly, without JSONata, because
 * it is by far the commonest case and sits on the ingest hot path. Expressions are compiled
 * when the config loads, so a typo is a config error pointing at its line, not a runtime
 * surprise. A record that maps to invalid data is refused with the reason, per record, so
 * the source can quarantine it and carry on with the next.
 *
 *   map:
 *     event: shipment                       # milestone | shipment
 *     key: ShipmentNo                       # work order / shipment number
 *     occurredAt: ChangedAt                 # ISO 8601 text or epoch ms
 *     fields:
 *       salesOrder: SalesOrder
 *       status: $lowercase(Status)
 *       carrier: Carrier
 *       lines: "Lines.{ 'lineNumber': $number(No), 'product': Sku, 'quantity': { 'value': $number(Qty), 'unit': Uom } }"
 */
import jsonata from 'jsonata';
import { z } from 'zod';
import { subjectFor } from '../../protocols/events/envelope.js';
import { PRODUCTION_MILESTONE_V1 } from '../../protocols/events/production-milestone.v1.js';
import { validateData } from '../../protocols/events/registry.js';
import { SHIPMENT_V1 } from '../../protocols/events/shipment.v1.js';
import type { EventDraft } from '../sources/source.js';

const PLAIN_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Why an expression does not compile, or undefined when it does. */
export function expressionError(expression: string): string | undefined {
  if (PLAIN_PATH.test(expression)) return undefined;
  try {
    jsonata(expression);
    return undefined;
  } catch (e) {
    const err = e as { message?: string; position?: number };
    return `not a valid JSONata expression${err.position !== undefined ? ` (at character ${err.position})` : ''}: ${err.message ?? String(e)}`;
  }
}

export const Expression = z
  .string()
  .min(1)
  .max(4000)
  .superRefine((expression, ctx) => {
    const error = expressionError(expression);
    if (error) ctx.addIssue({ code: 'custom', message: error });
  })
  .describe('A JSONata expression over the record, or a plain field path (e.g. `ShipmentNo`, `Header.Order.Id`).');

const EVENT_TYPES = { milestone: PRODUCTION_MILESTONE_V1, shipment: SHIPMENT_V1 } as const;

export const RecordMapping = z
  .object({
    event: z.enum(['milestone', 'shipment']).describe('Which canonical event a record becomes: a production milestone or a shipment status.'),
    key: Expression.describe('The business key: the work order (milestone) or shipment number (shipment). Events are ordered per key.'),
    occurredAt: Expression.describe('When it happened at the source: ISO 8601 text (with offset, or UTC) or epoch milliseconds. Goes into the event id.'),
    discriminator: Expression.optional().describe('Anything else that tells two facts with the same key, kind and time apart (a line number, a counter).'),
    fields: z
      .record(z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/), Expression)
      .default({})
      .describe('Event data fields by name (see the ProductionMilestone v1 / Shipment v1 schemas), each an expression. The key and occurredAt fill `workOrder`/`shipment` and `occurredAt` unless given here.'),
  })
  .strict()
  .describe('How a source record becomes a canonical event.');
export type RecordMapping = z.infer<typeof RecordMapping>;

/** A record could not be mapped: the field at fault and why. */
export class MappingError extends Error {
  override readonly name = 'MappingError';
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

type Evaluator = (record: unknown) => Promise<unknown>;

function compile(expression: string): Evaluator {
  if (PLAIN_PATH.test(expression)) {
    const steps = expression.split('.');
    return async (record) => {
      let current: unknown = record;
      for (const step of steps) {
        if (typeof current !== 'object' || current === null) return undefined;
        current = (current as Record<string, unknown>)[step];
      }
      return current;
    };
  }
  const compiled = jsonata(expression);
  return (record) => compiled.evaluate(record) as Promise<unknown>;
}

function toMillis(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '') {
    const trimmed = value.trim();
    if (/^\d{10,16}$/.test(trimmed)) return Number(trimmed);
    const ms = Date.parse(trimmed);
    return Number.isNaN(ms) ? undefined : ms;
  }
  if (value instanceof Date) return value.getTime();
  return undefined;
}

/** Drops undefined and JSONata's sequence wrappers so the data is plain JSON. */
function plain(value: unknown): unknown {
  if (value === undefined || value === null || typeof value !== 'object') return value;
  return JSON.parse(JSON.stringify(value));
}

export interface CompiledMapping {
  /** Maps one record; throws MappingError (with the field at fault) when it cannot. */
  toDraft(record: unknown, source: { plant: string; sourceName: string }): Promise<EventDraft>;
}

export function compileMapping(mapping: RecordMapping): CompiledMapping {
  const key = compile(mapping.key);
  const occurredAt = compile(mapping.occurredAt);
  const discriminator = mapping.discriminator ? compile(mapping.discriminator) : undefined;
  const fields = Object.entries(mapping.fields).map(([name, expression]) => [name, compile(expression)] as const);
  // Every JSONata field expression is also compiled into ONE object expression, evaluated
  // once per record: each evaluation has a fixed cost (environment, promise chain) that
  // dominated ingest when a mapping had several. Plain paths stay on their direct walk.
  // Only when the combined one fails are the fields evaluated one by one, to name the culprit.
  const jsonataFields = Object.entries(mapping.fields).filter(([, expression]) => !PLAIN_PATH.test(expression));
  const pathFields = fields.filter(([name]) => PLAIN_PATH.test(mapping.fields[name]!));
  const combined =
    jsonataFields.length > 1 ? jsonata(`{ ${jsonataFields.map(([name, expression]) => `${JSON.stringify(name)}: (${expression})`).join(', ')} }`) : undefined;
  const type = EVENT_TYPES[mapping.event];
  const keyField = mapping.event === 'milestone' ? 'workOrder' : 'shipment';
  const kindField = mapping.event === 'milestone' ? 'milestone' : 'status';

  async function evaluate(name: string, fn: Evaluator, record: unknown): Promise<unknown> {
    try {
      return await fn(record);
    } catch (e) {
      throw new MappingError(name, `expression failed: ${(e as Error).message}`);
    }
  }

  return {
    async toDraft(record, source) {
      const keyValue = await evaluate('key', key, record);
      if (keyValue === undefined || keyValue === null || String(keyValue).trim() === '') throw new MappingError('key', 'is empty');
      const businessKey = String(keyValue).trim();
      const when = toMillis(await evaluate('occurredAt', occurredAt, record));
      if (when === undefined) throw new MappingError('occurredAt', 'is not an ISO 8601 time or epoch milliseconds');
      const data: Record<string, unknown> = { [keyField]: businessKey, occurredAt: new Date(when).toISOString() };
      if (combined) {
        for (const [name, fn] of pathFields) {
          const value = await fn(record);
          if (value !== undefined && value !== null && value !== '') data[name] = plain(value);
        }
        let values: Record<string, unknown> | undefined;
        try {
          values = (await combined.evaluate(record)) as Record<string, unknown> | undefined;
        } catch {
          // Evaluated one by one below, so the error names its field.
        }
        if (values !== undefined) {
          for (const [name] of jsonataFields) {
            const value = plain(values[name]);
            if (value !== undefined && value !== null && value !== '') data[name] = value;
          }
        } else {
          for (const [name] of jsonataFields) {
            const value = plain(await evaluate(`fields.${name}`, fields.find(([n]) => n === name)![1], record));
            if (value !== undefined && value !== null && value !== '') data[name] = value;
          }
        }
      } else {
        for (const [name, fn] of fields) {
          const value = plain(await evaluate(`fields.${name}`, fn, record));
          if (value !== undefined && value !== null && value !== '') data[name] = value;
        }
      }
      const check = validateData(type, data);
      if (!check.ok) throw new MappingError('data', check.reason);
      const what = String(data[kindField]);
      const disc = discriminator ? await evaluate('discriminator', discriminator, record) : undefined;
      return {
        type,
        subject: subjectFor(mapping.event === 'milestone' ? 'work-order' : 'shipment', businessKey),
        fact: {
          plant: source.plant,
          source: source.sourceName,
          key: businessKey,
          what,
          occurredAtMs: when,
          ...(disc === undefined || disc === null ? {} : { discriminator: typeof disc === 'number' ? disc : String(disc) }),
        },
        data,
      };
    },
  };
}
