import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { batchOf } from '../../src/records/stats/batches.js';
import { cli } from '../support/cliRunner.js';
import { TestNetwork, TEST_PASSWORD } from '../support/testNetwork.js';
import { KEY, TuiDriver } from '../support/tuiDriver.js';

/**
 * An auditor's statistics query end to end (issue 13), through the client, the CLI and the TUI, on four node
 * processes: ten patients at four hospitals contribute known systolic values through their clients' record
 * creation (one more opts out); after the batch closes `medledger stats` posts the query, waits for every
 * hospital's aggregate share and prints the exact mean, the standard deviation from the reused job, and the
 * histogram as a bar chart; the TUI shows the median bucket; with a hospital down a query stays pending and
 * names it (exit 1), in the CLI and the TUI.
 */
const setting = { batchMs: 20_000 };
const systolic = [110, 115, 120, 122, 125, 130, 131, 140, 145, 150];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('medledger stats and the TUI statistics screen against four nodes', () => {
  let net: TestNetwork;
  let api: string;
  let auditor: Session;
  let batch = '';
  let tui: TuiDriver | undefined;
  const as = (user: string) => ['--api', api, '--user', user];

  beforeAll(async () => {
    net = await TestNetwork.create(4, { stats: setting });
    await net.start();
    api = net.node(0).apiUrl;
    auditor = await net.staff(0, 'aud-q', 'auditor');
    const patients: Session[] = [];
    for (let i = 0; i <= systolic.length; i++) patients.push(await net.patient(i % 4, `pat-q${i}`));
    // The last patient never opts in: their record is not reported.
    for (const p of patients.slice(0, systolic.length)) expect((await p.setStatsConsent(true)).denied).toBeUndefined();
    // Every record of this test in one batch: start early in a fresh one.
    const now = Date.now();
    const current = batchOf(setting, now);
    if (current.end - now < 14_000) await sleep(current.end - now + 100);
    const b = batchOf(setting, Date.now());
    batch = b.label;
    const created = await Promise.all(patients.map((p, i) => p.createRecord(p.userId, { vitals: { bloodPressure: `${systolic[i] ?? 200}/80` } })));
    expect(created.map((c) => c.denied)).toEqual(created.map(() => undefined));
    expect(Date.now()).toBeLessThan(b.end);
    // Closed once a block's time passes its end (empty blocks keep coming).
    await sleep(b.end - Date.now() + 1_000);
  }, 150_000);

  afterEach(() => {
    tui?.unmount();
    tui = undefined;
  });

  afterAll(async () => {
    await net?.destroy();
  });

  it('the mean comes out exactly, over the ten contributed reports only', async () => {
    const r = await cli(['stats', ...as('aud-q'), '--measure', 'systolic', '--stat', 'mean', '--batch', batch, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { status: string; used: number; dropped: number; reused: boolean; result: { mean: number } };
    expect(out).toMatchObject({ status: 'done', used: 10, dropped: 0, reused: false });
    expect(out.result.mean).toBeCloseTo(systolic.reduce((a, v) => a + v, 0) / systolic.length, 9);
    const { batches } = await auditor.api.statsBatches(auditor.userId, auditor.signer, 'systolic');
    expect(batches.find((x) => x.batch === batch)?.reports).toBe(10);
  }, 90_000);

  it('the standard deviation reuses the job; the histogram is a bar chart with median and mode marked', async () => {
    const mean = systolic.reduce((a, v) => a + v, 0) / systolic.length;
    const sd = Math.sqrt(systolic.reduce((a, v) => a + (v - mean) ** 2, 0) / systolic.length);
    const stddev = await cli(['stats', ...as('aud-q'), '--measure', 'systolic', '--stat', 'stddev', '--batch', batch]);
    expect(stddev.code).toBe(0);
    expect(stddev.stdout).toContain(`systolic standard deviation ${sd.toFixed(2)} mmHg (population; mean ${mean.toFixed(2)} mmHg)`);
    expect(stddev.stdout).toContain('reports used: 10 · dropped as invalid: 0');
    expect(stddev.stdout).toContain('computed earlier: this query reused its stored aggregate');

    const hist = await cli(['stats', ...as('aud-q'), '--measure', 'systolic', '--stat', 'histogram', '--batch', batch, '--wait', '90'], {}, 120_000);
    expect(hist.code).toBe(0);
    const lines = hist.stdout.split('\n');
    // 110–119: 2, 120–129: 3 (the lower median, the 5th value, and the mode), 130–139: 2, 140–149: 2, 150–159: 1.
    const row = (label: string) => lines.find((l) => l.startsWith(`${label} mmHg │`));
    expect(row('110–119')).toMatch(/│█+\s+2$/);
    expect(row('120–129')).toMatch(/│█{40} 3 {2}◀ median, mode$/);
    expect(row('150–159')).toMatch(/│█+\s+1$/);
    expect(lines.some((l) => l.startsWith('100–109'))).toBe(false);
  }, 150_000);

  it('TUI: the auditor chooses measure, statistic and batch and sees the median bucket from the reused job', async () => {
    tui = new TuiDriver(api);
    await tui.login('aud-q', TEST_PASSWORD);
    await tui.waitFor('[a] Statistics');
    await tui.press('a');
    await tui.waitFor('Statistic: ‹ mean ›');
    // Statistic: mean → stddev → histogram → median.
    await tui.press(KEY.enter, KEY.right, KEY.right, KEY.right, KEY.enter);
    await tui.waitFor(new RegExp(`${batch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+\\| 10\\s+\\| closed · aggregated`));
    await tui.press(KEY.enter);
    const f = await tui.waitFor('Reports used: 10', 60_000);
    expect(f).toContain('systolic: median bucket 120–129 mmHg');
    expect(f).toContain('computed earlier; this query reused its stored aggregate');
    expect(f).toMatch(/120–129 mmHg │█+\s+3 {2}◀ median, mode/);
  }, 90_000);

  it('with a hospital down the query stays pending and names it (exit 1)', async () => {
    await net.kill(3);
    const r = await cli(['stats', ...as('aud-q'), '--measure', 'diastolic', '--stat', 'mean', '--batch', batch, '--wait', '4']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/diastolic mean of batch .*: still pending/);
    expect(r.stdout).toContain('hosp-d');
    expect(r.stderr).toContain('waiting for');

    // The TUI shows the same while it waits: a new job (diastolic median) that hosp-d's absence holds up.
    tui = new TuiDriver(api);
    await tui.login('aud-q', TEST_PASSWORD);
    await tui.waitFor('[a] Statistics');
    await tui.press('a');
    await tui.waitFor('Statistic: ‹ mean ›');
    await tui.press(KEY.right, KEY.enter, KEY.right, KEY.right, KEY.right, KEY.enter);
    await tui.waitFor('Statistics — diastolic median: choose a batch');
    await tui.waitFor('| 10 ');
    await tui.press(KEY.enter);
    const f = await tui.waitFor('This node waits for preparation shares of hosp-d', 30_000);
    expect(f).toMatch(/Aggregating 10 reports: waiting for the aggregate share of hosp-a, hosp-b, hosp-c, hosp-d/);
  }, 90_000);
});
