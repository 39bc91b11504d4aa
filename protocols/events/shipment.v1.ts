/** Shipment v1: the status of a shipment against a sales order. */
import { z } from 'zod';
import { Quantity } from './production-milestone.v1.js';

export const SHIPMENT_STATUSES = ['packed', 'shipped', 'delivered', 'exception'] as const;
export type ShipmentStatus = (typeof SHIPMENT_STATUSES)[number];

export const ShipmentLine = z
  .object({
    lineNumber: z.number().int().positive().describe('Line number on the shipment.'),
    product: z.string().min(1).max(128).describe('Product / SKU.'),
    quantity: Quantity.describe('Shipped quantity.'),
    salesOrderLine: z.string().min(1).max(64).optional().describe('Sales order line this fulfils.'),
  })
  .strict();

export const ShipmentV1 = z
  .object({
    shipment: z.string().min(1).max(128).describe('Shipment / delivery number in the plant ERP.'),
    salesOrder: z.string().min(1).max(128).optional().describe('Sales order this shipment fulfils.'),
    status: z.enum(SHIPMENT_STATUSES).describe('Shipment status.'),
    carrier: z.string().min(1).max(128).optional().describe('Carrier name or SCAC code.'),
    trackingNumber: z.string().min(1).max(128).optional().describe('Carrier tracking number.'),
    lines: z.array(ShipmentLine).max(1000).default([]).describe('Shipped lines.'),
    occurredAt: z.iso.datetime({ offset: true }).describe('When the status changed at the source.'),
    reason: z.string().max(1000).optional().describe('Why, for status "exception".'),
  })
  .strict();
export type ShipmentV1 = z.infer<typeof ShipmentV1>;

export const SHIPMENT_V1 = 'com.plantlink.shipment.v1';
