import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Clock } from '../../clock.ts';
import type { TxtResolver } from '../../sender-domains/key-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { DkimSigner } from '../../sender-domains/signer.ts';
import type { Store } from '../../storage/store.ts';
import type { HttpPoster } from '../http-poster.ts';
import { forEachLimited } from '../concurrency-limit.ts';
import { signAndCount } from '../queue.ts';
import { newQueueId } from '../queue-id.ts';
import { dnsCode, isNoRecords } from '../routing.ts';
import { buildTlsReportMail } from './tls-report-mail.ts';
import { buildTlsReport, parseTlsRptRecord, tlsReportFileName, utcDay, type TlsReporter } from './tls-rpt-report.ts';

/**
 * Sends the daily TLS reports (RFC 8460) once the UTC day they cover has ended (and the last
 * counts of it have had time to be flushed): for each policy domain with sessions counted that
 * day and a `_smtp._tls` TXT record, the aggregate report, gzipped, by HTTPS POST to each https
 * rua and by one mail through the queue to the mailto ones. One node sends each (domain, day):
 * it claims it in the store first; a claim whose send failed runs out and another pass (of any
 * node) tries again, for the two days after the day. A pass takes every report due, a few at
 * once, until none is left or its time budget is spent; one domain's failure is its own.
 */

export interface TlsReportSenderDeps {
  store: Pick<Store, 'tlsReportsDue' | 'tlsSessionCounts' | 'claimTlsReport' | 'finishTlsReport' | 'purgeTlsReports' | 'enqueue'>;
  resolver: TxtResolver;
  poster: Pick<HttpPoster, 'post'>;
  dkim: Pick<DkimSigner, 'sign'>;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  reporter: TlsReporter;
  /** The header From of report mail. */
  from: string;
  pool: string;
  /** This node, as the claim's owner. */
  owner: string;
  /** How often due reports are looked for (default 15 minutes). */
  intervalMs?: number;
  /**
   * How long a claim holds before another node may take it over (default 10 minutes). A report
   * still at work when its claim is about to run out is cut off, so no other node sends it
   * while this one does.
   */
  claimMs?: number;
  /** How long one pass goes on taking reports (default 10 minutes); the rest wait for the next. */
  passBudgetMs?: number;
  /** Reports at work at once (default 4). */
  concurrency?: number;
  /** How long after a day's end its report is made (default 10 minutes: counts are flushed every minute). */
  reportDelayMs?: number;
}

const DAY_MS = 86_400_000;
/** Days after a day's end its report is still tried. */
const DAYS_TRIED = 2;
/** Counts and report claims are kept this long (days), then purged. */
const KEPT_DAYS = 8;
/** Domains asked of the store at a time. */
const BATCH = 100;
/** What a report leaves of its claim's time unused: a report cut off then still ends before its claim does. */
const CLAIM_MARGIN_MS = 30_000;

export type ReportResult = 'sent' | 'skipped' | 'failed' | 'taken';

export class TlsReportSender {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  /** Aborted on stop: ends the lookups and POSTs at work. */
  private stopping = new AbortController();
  private readonly log: Logger;
  private readonly claimMs: number;

  constructor(private readonly deps: TlsReportSenderDeps) {
    this.log = deps.logger.child({ component: 'tls-report' });
    this.claimMs = deps.claimMs ?? 10 * 60_000;
  }

  start(): void {
    if (this.timer) return;
    if (this.stopping.signal.aborted) this.stopping = new AbortController();
    const tick = () => {
      // A pass still at work (a slow one, or one with many reports) is not joined by another.
      if (this.running) return;
      this.running = this.runOnce()
        .catch((err: unknown) => this.log.error({ event: 'tlsrpt.pass.failed', err }, 'TLS report pass failed'))
        .finally(() => (this.running = null));
    };
    this.timer = setInterval(tick, this.deps.intervalMs ?? 15 * 60_000);
    this.timer.unref();
    tick();
  }

  /** Ends the pass at work: no report is begun after this, those at work are cut off (their claims run out). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopping.abort();
    await this.running;
  }

  /** One pass: the reports due for the days that ended, then the purge of old counts. Returns what became of each. */
  async runOnce(): Promise<Map<string, ReportResult>> {
    const { clock } = this.deps;
    const results = new Map<string, ReportResult>();
    const started = clock.now();
    const reportable = started - (this.deps.reportDelayMs ?? 10 * 60_000);
    try {
      for (let back = 1; back <= DAYS_TRIED; back++) await this.reportDay(utcDay(reportable - back * DAY_MS), started, results);
    } finally {
      // Whatever became of the reports, old counts go: a failing pass must not let the tables grow for ever.
      await this.deps.store
        .purgeTlsReports(utcDay(started - KEPT_DAYS * DAY_MS), started - KEPT_DAYS * DAY_MS)
        .catch((err: unknown) => this.log.warn({ event: 'tlsrpt.purge.failed', err }, 'purging old TLS report counts failed'));
    }
    return results;
  }

  /** Every report of the day that is due, until none is, the pass's budget is spent or the sender stops. */
  private async reportDay(day: string, started: number, results: Map<string, ReportResult>): Promise<void> {
    const { store, clock } = this.deps;
    const budget = this.deps.passBudgetMs ?? 10 * 60_000;
    const goOn = () => !this.stopping.signal.aborted && clock.now() - started < budget;
    // A domain whose claim failed (the store refused it) stays due: it is not taken twice in a pass.
    const tried = new Set<string>();
    while (goOn()) {
      const due = (await store.tlsReportsDue(day, clock.now(), BATCH)).filter((domain) => !tried.has(domain));
      if (due.length === 0) return;
      for (const domain of due) tried.add(domain);
      await forEachLimited(due, this.deps.concurrency ?? 4, async (domain) => {
        if (!goOn()) return;
        const result = await this.reportCaught(domain, day);
        results.set(`${day} ${domain}`, result);
        if (result !== 'taken') this.deps.metrics.tlsReports.inc({ result });
      });
    }
  }

  /** One report, its errors its own: logged and counted as failed, its claim left to run out. */
  private async reportCaught(domain: string, day: string): Promise<ReportResult> {
    const { clock } = this.deps;
    // Cut off before the claim runs out, so another node taking it over never sends it as well.
    const cutOff = new AbortController();
    const timer = setTimeout(() => cutOff.abort(), Math.max(this.claimMs - CLAIM_MARGIN_MS, 1_000));
    const signal = AbortSignal.any([this.stopping.signal, cutOff.signal]);
    try {
      return await this.report(domain, day, clock.now(), signal);
    } catch (err) {
      this.log.warn({ event: 'tlsrpt.report.failed', domain, day, err }, 'TLS report failed; tried again later');
      return 'failed';
    } finally {
      clearTimeout(timer);
    }
  }

  /** Claims, sends and finishes one domain's report of one day. */
  private async report(domain: string, day: string, now: number, signal: AbortSignal): Promise<ReportResult> {
    const { store, clock, owner, reporter } = this.deps;
    if (!(await store.claimTlsReport(domain, day, owner, now + this.claimMs, now))) return 'taken';
    let records: string[][];
    try {
      records = await untilAborted(this.deps.resolver.resolveTxt(`_smtp._tls.${domain}`), signal);
    } catch (err) {
      if (!isNoRecords(dnsCode(err))) {
        this.log.warn({ event: 'tlsrpt.lookup.failed', domain, day, code: dnsCode(err) }, 'TLS-RPT record lookup failed; tried again later');
        return 'failed';
      }
      records = [];
    }
    const rua = parseTlsRptRecord(records);
    if (rua?.ignored.length) this.log.info({ event: 'tlsrpt.rua.ignored', domain, ignored: rua.ignored }, 'TLS-RPT destinations ignored');
    if (!rua) {
      await store.finishTlsReport(domain, day, owner, 'skipped', clock.now());
      return 'skipped';
    }
    const reportId = `${day}.${domain}@${reporter.submitter}`;
    const json = buildTlsReport(reporter, domain, day, await store.tlsSessionCounts(domain, day), reportId);
    const gzipped = await promisify(gzip)(JSON.stringify(json));
    const fileName = tlsReportFileName(reporter, domain, day, day.replaceAll('-', ''));
    let delivered = 0;
    for (const url of rua.https) {
      if (signal.aborted) break;
      const posted = await this.deps.poster.post(url, { 'content-type': 'application/tlsrpt+gzip' }, gzipped, signal);
      if (posted.error === null) delivered++;
      else this.log.warn({ event: 'tlsrpt.post.failed', domain, day, url, status: posted.status, error: posted.error }, 'TLS report POST failed');
    }
    if (rua.mailto.length && !signal.aborted) {
      const id = newQueueId(clock.now());
      const mail = await buildTlsReportMail({ reporter, from: this.deps.from, to: rua.mailto, domain, day, reportId, fileName, gzipped, id, pool: this.deps.pool, now: clock.now() });
      await store.enqueue([{ ...mail, body: await signAndCount(this.deps.dkim, this.deps.metrics, mail.body) }]);
      delivered++;
    }
    // Not one way took it: the claim runs out and a later pass tries again.
    if (delivered === 0) return 'failed';
    await store.finishTlsReport(domain, day, owner, 'sent', clock.now());
    this.log.info({ event: 'tlsrpt.sent', domain, day, https: rua.https.length, mailto: rua.mailto.length }, 'TLS report sent');
    return 'sent';
  }
}

/** The promise's outcome, or an abort error as soon as `signal` aborts (a DNS query cannot itself be cancelled). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted (stopping)'));
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new Error('aborted (stopping)'));
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
