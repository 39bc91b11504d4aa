/**
 * ProductionMilestone v1: what a planner needs to see on a sales order about the
 * work order that fulfils it. Vocabulary follows ISA-95 / B2MML where it fits
 * (work order ~ JobOrder, operation ~ SegmentResponse, good/scrap quantities ~
 * ProductionPerformance MaterialActual).
 */
import { z } from 'zod';

export const MILESTONE_KINDS = [
  'released',
  'started',
  'quantity-reported',
  'completed',
  'held',
  'resumed',
] as const;
export type MilestoneKind = (typeof MILESTONE_KINDS)[number];

export const Quantity = z
  .object({
    value: z.number().finite().nonnegative().describe('Amount.'),
    unit: z.string().min(1).max(32).describe('Unit of measure (UN/CEFACT code or plant unit, e.g. "EA", "kg").'),
  })
  .strict();

export const ProductionMilestoneV1 = z
  .object({
    workOrder: z.string().min(1).max(128).describe('Work order (ISA-95 JobOrder) id in the plant.'),
    salesOrder: z.string().min(1).max(128).optional().describe('Sales order this work order fulfils, as the CRM knows it.'),
    product: z.string().min(1).max(128).optional().describe('Product / SKU (ISA-95 MaterialDefinitionID).'),
    operation: z.string().min(1).max(128).optional().describe('Operation or segment (ISA-95 ProcessSegmentID).'),
    milestone: z.enum(MILESTONE_KINDS).describe('What happened to the work order.'),
    goodQuantity: Quantity.optional().describe('Cumulative good quantity at the time of the milestone.'),
    scrapQuantity: Quantity.optional().describe('Cumulative scrap quantity at the time of the milestone.'),
    plannedQuantity: Quantity.optional().describe('Quantity the work order was released for.'),
    equipment: z.string().min(1).max(128).describe('Line or equipment (ISA-95 EquipmentID) that ran it.'),
    occurredAt: z.iso.datetime({ offset: true }).describe('When it happened at the source (source timestamp).'),
    estimatedCompletion: z.iso.datetime({ offset: true }).optional().describe('Estimated completion, if the MES knows it.'),
  })
  .strict();
export type ProductionMilestoneV1 = z.infer<typeof ProductionMilestoneV1>;

export const PRODUCTION_MILESTONE_V1 = 'com.plantlink.production.milestone.v1';
