/** How the simulated ERP's shipment changes become Shipment v1 events (used by the demo and the SOAP tests). */
export const ERP_SHIPMENT_MAP = {
  event: 'shipment',
  key: 'ShipmentNo',
  occurredAt: 'ChangedAt',
  fields: {
    salesOrder: 'SalesOrder',
    status: '$lowercase(Status)',
    carrier: 'Carrier',
    trackingNumber: 'TrackingNo',
    reason: 'Reason',
    lines: "[Lines.Line.{ 'lineNumber': LineNo, 'product': Sku, 'quantity': { 'value': Qty, 'unit': Uom } }]",
  },
} as const;
