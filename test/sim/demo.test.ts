/**
 * `npm start` is the first thing a newcomer runs: the finite demo must bring every source's
 * data (OPC UA lines, SOAP ERP shipments, MES CSV drops) into the CRM emulator, each
 * milestone once, and exit 0 (it exits 1 when anything is missing after a minute).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'plantlink-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('plantlink demo', () => {
  it('runs a finite demo in which milestones from OPC UA and from dropped MES files, and shipments from the SOAP ERP, land in the CRM', async () => {
    const cli = join(import.meta.dirname, '../../installers/plantlink.ts');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, 'demo', '--work-orders', '1', '--dir', dir], {
      timeout: 120_000,
    });
    const summary = /the lines made (\d+) milestones and the MES exported (\d+); (\d+) landed in the CRM \((\d+) work orders, (\d+) shipments\)/.exec(stdout);
    expect(summary, stdout).not.toBeNull();
    const [, lineMilestones, mesRows, landed, , shipments] = summary!.map(Number);
    expect(lineMilestones).toBeGreaterThan(0);
    expect(mesRows).toBeGreaterThan(0);
    expect(landed).toBe(lineMilestones! + mesRows!);
    expect(shipments).toBeGreaterThan(0);
    expect(stdout).toMatch(/CRM {2}WO-PACK1-0001 +released/);
    expect(stdout).toMatch(/CRM {2}SH-\d+ +shipment /);
  }, 150_000);
});
