import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Clock } from '../../clock.ts';
import type { TxtResolver } from '../../sender-domains/key-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { DkimSigner } from '../../sender-domains/signer.ts';
import type { Store } from '../../storage/store.ts';
import type { HttpPoster } from '../http-poster.ts';
import { signAndCount } from '../queue.ts';
import { newQueueId } from '../queue-id.ts';
import { dnsCode, isNoRecords } from '../routing.ts';
import { buildTlsReportMail } from './tls-report-mail.ts';
import { buildTlsReport, parseTlsRptRecord, tlsReportFileName, utcDay, type TlsReporter } from './tls-rpt-report.ts';

/**
 * Sends the daily TLS reports (RFC 8460) once the UTC day they cover has ended: for each policy
 * domain with sessions counted that day and a `_smtp._tls` TXT record, the aggregate report,
 * gzipped, by HTTPS POST to each https rua and by one mail through the queue to the mailto ones.
 * One node sends each (domain, day): it claims it in the store first; a claim whose send failed
 * runs out and another pass (of any node) tries again, for the two days after the day.
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
  /** How long a claim holds before another node may take it over (default 10 minutes). */
  claimMs?: number;
}

const DAY_MS = 86_400_000;
/** Days after a day's end its report is still tried. */
const DAYS_TRIED = 2;
/** Counts and report claims are kept this long (days), then purged. */
const KEPT_DAYS = 8;
/** Domains taken per day per pass. */
const BATCH = 100;

export type ReportResult = 'sent' | 'skipped' | 'failed' | 'taken';

export class TlsReportSender {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly deps: TlsReportSenderDeps) {
    this.log = deps.logger.child({ component: 'tls-report' });
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.runOnce().catch((err: unknown) => this.log.error({ event: 'tlsrpt.pass.failed', err }, 'TLS report pass failed'));
    };
    this.timer = setInterval(tick, this.deps.intervalMs ?? 15 * 60_000);
    this.timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass: the reports due for the days that ended, then the purge of old counts. Returns what became of each. */
  async runOnce(): Promise<Map<string, ReportResult>> {
    const { store, clock } = this.deps;
    const results = new Map<string, ReportResult>();
    const now = clock.now();
    for (let back = 1; back <= DAYS_TRIED; back++) {
      const day = utcDay(now - back * DAY_MS);
      for (const domain of await store.tlsReportsDue(day, now, BATCH)) {
        const result = await this.report(domain, day);
        results.set(`${day} ${domain}`, result);
        if (result !== 'taken') this.deps.metrics.tlsReports.inc({ result });
      }
    }
    await store.purgeTlsReports(utcDay(now - KEPT_DAYS * DAY_MS), now - KEPT_DAYS * DAY_MS);
    return results;
  }

  /** Claims, sends and finishes one domain's report of one day. */
  private async report(domain: string, day: string): Promise<ReportResult> {
    const { store, clock, owner, reporter } = this.deps;
    const now = clock.now();
    if (!(await store.claimTlsReport(domain, day, owner, now + (this.deps.claimMs ?? 10 * 60_000), now))) return 'taken';
    let records: string[][];
    try {
      records = await this.deps.resolver.resolveTxt(`_smtp._tls.${domain}`);
    } catch (err) {
      if (!isNoRecords(dnsCode(err))) {
        this.log.warn({ event: 'tlsrpt.lookup.failed', domain, day, code: dnsCode(err) }, 'TLS-RPT record lookup failed; tried again later');
        return 'failed';
      }
      records = [];
    }
    const rua = parseTlsRptRecord(records);
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
      const posted = await this.deps.poster.post(url, { 'content-type': 'application/tlsrpt+gzip' }, gzipped);
      if (posted.error === null) delivered++;
      else this.log.warn({ event: 'tlsrpt.post.failed', domain, day, url, status: posted.status, error: posted.error }, 'TLS report POST failed');
    }
    if (rua.mailto.length) {
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
