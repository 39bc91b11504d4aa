/**
 * A simulated MES that reports a manual packing cell's work orders the way many older
 * MES do: every few seconds it writes a CSV export into a shared drop folder.
 *
 * The export looks like what plant IT actually finds: semicolon-delimited, a header row,
 * Windows-1252 text with CRLF line ends, decimal quantities, local-looking timestamps with
 * an offset. Files are written as `<name>.tmp` and renamed when complete (the agent's
 * `ready.mode: rename`), so the agent never reads half a file.
 *
 * Each work order goes released -> started -> quantity-reported (n times) -> completed, one
 * row per step; `truth` lists every row ever exported, so a test or the demo can check
 * that each reached the CRM exactly once.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';

export interface MesRow {
  WorkOrder: string;
  SalesOrder: string;
  Article: string;
  Step: 'RELEASED' | 'STARTED' | 'QTY' | 'COMPLETED';
  GoodQty: number;
  ScrapQty: number;
  PlannedQty: number;
  Unit: string;
  Cell: string;
  Timestamp: string;
}

/** How the export's rows become ProductionMilestone v1 events (the demo's agent config uses it). */
export const MES_MILESTONE_MAP = {
  event: 'milestone',
  key: 'WorkOrder',
  occurredAt: 'Timestamp',
  fields: {
    salesOrder: 'SalesOrder',
    product: 'Article',
    milestone: "$lookup({ 'RELEASED': 'released', 'STARTED': 'started', 'QTY': 'quantity-reported', 'COMPLETED': 'completed' }, Step)",
    goodQuantity: "{ 'value': $number($replace(GoodQty, ',', '.')), 'unit': Unit }",
    scrapQuantity: "{ 'value': $number($replace(ScrapQty, ',', '.')), 'unit': Unit }",
    plannedQuantity: "{ 'value': $number($replace(PlannedQty, ',', '.')), 'unit': Unit }",
    equipment: 'Cell',
  },
} as const;

export const MES_CSV_FORMAT = { type: 'csv', delimiter: ';', header: true } as const;

const HEADER = 'WorkOrder;SalesOrder;Article;Step;GoodQty;ScrapQty;PlannedQty;Unit;Cell;Timestamp';

export class MesFileExporter {
  readonly truth: MesRow[] = [];
  private seq = 0;
  private files = 0;
  private readonly orders: { wo: string; so: string; article: string; planned: number; good: number; step: number }[] = [];

  constructor(
    readonly folder: string,
    private readonly options: { cell?: string; quantityReports?: number } = {},
  ) {
    mkdirSync(folder, { recursive: true });
  }

  /** Advances every open work order one step (opening a new one when fewer than two are open) and writes one export file. */
  exportOnce(now = new Date()): string | undefined {
    const cell = this.options.cell ?? 'PACK1';
    const reports = this.options.quantityReports ?? 2;
    if (this.orders.length < 2) {
      this.seq++;
      const n = String(this.seq).padStart(4, '0');
      this.orders.push({ wo: `WO-${cell}-${n}`, so: `SO-${70000 + this.seq}`, article: `CARTON-${(this.seq % 3) + 1}`, planned: 12, good: 0, step: 0 });
    }
    const rows: MesRow[] = [];
    for (const o of [...this.orders]) {
      const stepName: MesRow['Step'] = o.step === 0 ? 'RELEASED' : o.step === 1 ? 'STARTED' : o.step < 2 + reports ? 'QTY' : 'COMPLETED';
      if (stepName === 'QTY' || stepName === 'COMPLETED') o.good = Math.min(o.planned, o.good + Math.ceil(o.planned / (reports + 1)));
      if (stepName === 'COMPLETED') o.good = o.planned;
      // Distinct timestamps per row: two steps of one order never share a millisecond.
      const at = new Date(now.getTime() + rows.length);
      rows.push({
        WorkOrder: o.wo,
        SalesOrder: o.so,
        Article: o.article,
        Step: stepName,
        GoodQty: o.good,
        ScrapQty: stepName === 'COMPLETED' ? 1 : 0,
        PlannedQty: o.planned,
        Unit: 'EA',
        Cell: cell,
        Timestamp: localIso(at),
      });
      o.step++;
      if (stepName === 'COMPLETED') this.orders.splice(this.orders.indexOf(o), 1);
    }
    if (rows.length === 0) return undefined;
    this.truth.push(...rows);
    const name = `MES_PRODREP_${String(++this.files).padStart(5, '0')}.csv`;
    const text = [HEADER, ...rows.map((r) => [r.WorkOrder, r.SalesOrder, r.Article, r.Step, decimal(r.GoodQty), decimal(r.ScrapQty), decimal(r.PlannedQty), r.Unit, r.Cell, r.Timestamp].join(';'))].join('\r\n');
    const tmp = join(this.folder, `${name}.tmp`);
    writeFileSync(tmp, iconv.encode(`${text}\r\n`, 'windows-1252'));
    renameSync(tmp, join(this.folder, name));
    return name;
  }

  /** Exports every `everyMs` until the returned function is called; a failed export is skipped and reported to `onError`. */
  runAutomatically(options: { everyMs: number; onError?: (e: unknown) => void }): () => void {
    const timer = setInterval(() => {
      try {
        this.exportOnce();
      } catch (e) {
        // The drop folder vanished or filled up: the simulated MES skips this export, as a real one would.
        options.onError?.(e);
      }
    }, options.everyMs);
    return () => clearInterval(timer);
  }
}

/** German-style decimal comma, as such exports often have. */
function decimal(n: number): string {
  return n.toFixed(1).replace('.', ',');
}

/** ISO 8601 with the +01:00 offset of a plant in central Europe (milliseconds kept). */
function localIso(at: Date): string {
  const shifted = new Date(at.getTime() + 60 * 60 * 1000);
  return `${shifted.toISOString().slice(0, 23)}+01:00`;
}
