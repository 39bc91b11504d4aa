/** `plantlink relay reconcile` for people: the report as text tables. */
import { formatTable } from '../../protocols/text-table.js';
import { isRepairable, type ReconcileReport, type RepairResult } from './reconcile.js';

const KIND_ORDER = ['missing', 'duplicated', 'stale', 'dead', 'not_received', 'dropped', 'pending'] as const;

export function formatReport(report: ReconcileReport): string {
  const out: string[] = [];
  out.push(`Reconciliation of ${report.day} (UTC, by event time)${report.plant ? `, plant ${report.plant}` : ''}${report.lane ? `, lane ${report.lane}` : ''}${report.verify ? ', read back from the targets' : ', relay records only (--no-verify)'}`);
  out.push('');
  const table = (header: readonly string[], rows: readonly (readonly string[])[]) => formatTable(header, rows).trimEnd();
  out.push(
    table(
      ['Plant', 'In ledgers', 'Received', 'Not received', 'Dropped', 'Without ledger'],
      report.plants.map((p) => [p.plant, String(p.ledger), String(p.received), String(p.notReceived), String(p.dropped), String(p.withoutLedger)]),
    ),
  );
  out.push('');
  out.push(
    table(
      ['Plant', 'Lane', 'Events', 'Delivered', 'Pending', 'Dead', 'Checked', 'Missing', 'Duplicated', 'Stale'],
      report.lanes.map((l) => [l.plant, l.lane, String(l.events), String(l.delivered), String(l.pending), String(l.dead), l.verified ? String(l.recordsChecked) : 'not read', String(l.missing), String(l.duplicated), String(l.stale)]),
    ),
  );
  if (report.unverifiable.length) out.push(`\nNot read back (no read API): ${report.unverifiable.join(', ')}; only their confirmations count.`);
  const problems = [...report.findings].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  if (problems.length === 0) {
    out.push('\nNo drift: every event of the day is where it should be.');
  } else {
    out.push('');
    out.push(
      table(
        ['Finding', 'Plant', 'Key', 'Lane', 'Record', 'Detail'],
        problems.map((f) => [f.kind, f.plant, f.subject, f.lane ?? '-', f.record ? `${f.record.object}/${f.record.externalId}` : '-', f.detail]),
      ),
    );
    if (report.truncated) out.push(`(findings cut at ${report.findings.length}; the counts above are complete)`);
    const repairable = report.findings.filter(isRepairable).length;
    if (repairable) out.push(`\n${repairable} can be repaired: run again with --repair (re-sends missing and stale records, deletes duplicates).`);
  }
  return `${out.join('\n')}\n`;
}

export function formatRepair(repair: RepairResult): string {
  const lines = [
    ...repair.resent.map((r) => `re-sent ${r.events} event(s) on ${r.lane}`),
    ...repair.deleted.map((d) => `deleted ${d.ids.length} duplicate ${d.object} record(s) in ${d.lane}: ${d.ids.join(', ')}`),
    ...repair.errors.map((e) => `error: ${e}`),
  ];
  return `${lines.length ? lines.join('\n') : 'nothing to repair'}\n`;
}
