import type { SMTPServerSession } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { BufferBudget } from '../../src/engine/buffer-budget.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { AuthLockout } from '../../src/smtp/auth-lockout.ts';
import { sessionGuard } from '../../src/smtp/command-gate.ts';
import { Rejections } from '../../src/smtp/rejections.ts';
import { SessionRegistry } from '../../src/smtp/session-registry.ts';
import { capturingLogger } from '../helpers/log-capture.ts';

/* The command gate while little disk space is left: MAIL FROM is refused, nothing else is. */

function gate(storageLow: () => boolean) {
  const { smtp } = parseConfig({}, 'test', {});
  const { logger, logs } = capturingLogger();
  const metrics = new Metrics({ processMetrics: false });
  const rejections = new Rejections(metrics, logger);
  const sessions = new SessionRegistry({ smtp, log: logger, metrics, rejections, isStopping: () => false });
  const guard = sessionGuard(
    {
      maxCommandBytes: smtp.maxCommandBytes,
      lockout: new AuthLockout({ max: 5, windowMs: 60_000, clock: systemClock }),
      sessions,
      rejections,
      buffers: new BufferBudget(smtp.maxBufferedBytes),
      storageLow,
      isStopping: () => false,
      smtpUtf8: true,
    },
    'always',
  );
  return { guard, logs, metrics };
}

const session = (inTransaction: boolean) =>
  ({ id: 's1', remoteAddress: '192.0.2.7', secure: false, envelope: { mailFrom: inTransaction ? { address: 'a@b.test' } : false, rcptTo: inTransaction ? [{ address: 'c@d.test' }] : [] } }) as unknown as SMTPServerSession;
const line = (text: string) => Buffer.from(text, 'latin1');

describe('the command gate while disk space is low', () => {
  it('refuses MAIL FROM with 452 4.3.1, counted and logged as STORAGE_LOW', async () => {
    const { guard, logs, metrics } = gate(() => true);
    expect(guard.command(line('MAIL FROM:<app@sender.test>'), session(false), false)).toEqual({ code: 452, text: expect.stringMatching(/^4\.3\.1 /) });
    expect(logs.find((l) => l.reason === 'STORAGE_LOW')).toMatchObject({ event: 'smtp.sender.rejected' });
    expect(await metrics.registry.metrics()).toMatch(/smtp_rejections_total\{reason="STORAGE_LOW"\} 1/);
  });

  it('lets a transaction already under way finish, and every other command through', () => {
    const { guard } = gate(() => true);
    for (const command of ['RCPT TO:<c@d.test>', 'DATA', 'RSET', 'NOOP', 'EHLO client.test', 'QUIT']) {
      expect(guard.command(line(command), session(true), false)).toBeNull();
    }
    // Lines of an AUTH exchange are no commands.
    expect(guard.command(line('MAIL FROM:<x@y.test>'), session(false), true)).toBeNull();
  });

  it('takes MAIL FROM again once space is back', () => {
    let low = true;
    const { guard } = gate(() => low);
    expect(guard.command(line('MAIL FROM:<app@sender.test>'), session(false), false)?.code).toBe(452);
    low = false;
    expect(guard.command(line('MAIL FROM:<app@sender.test>'), session(false), false)).toBeNull();
  });
});
