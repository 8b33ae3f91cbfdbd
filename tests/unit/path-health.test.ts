import { describe, expect, it } from 'vitest';
import { PathHealth, unreachable, type DownPath } from '../../src/engine/path-health.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { EgressPath } from '../../src/ippool/egress-path.ts';
import { manualClock } from '../helpers/manual-clock.ts';

const T0 = 1_700_000_000_000;
const site = 'mx.dead.test';
const path = (ip: string | null): EgressPath => ({ ip, site, provider: 'other' });

function failure(stage: DeliveryOutcome['stage'] = 'connect', bounceClass: DeliveryOutcome['bounceClass'] = 'connection') {
  const outcome: DeliveryOutcome = { disposition: 'transient', code: null, enhanced: '4.4.1', response: 'connection refused by mx.dead.test', stage, bounceClass, remoteHost: 'mx.dead.test', egressIp: '127.0.0.2' };
  return { outcome, hops: [{ host: '192.0.2.1', port: 25, preference: 10, name: site }], hostname: 'mta.test' };
}

function health() {
  const clock = manualClock(T0);
  const events: string[] = [];
  const paths = new PathHealth({ clock, intervalMs: 60_000, maxIntervalMs: 300_000 });
  paths.subscribe({
    down: (entry) => events.push(`down ${entry.path.ip}`),
    connected: (p, wasDown) => events.push(`connected ${p.ip}${wasDown ? ' (was down)' : ''}`),
  });
  return { clock, paths, events };
}

describe('path health', () => {
  it('takes a path down after its hops failed, and tells when to try it again', () => {
    const { paths, events } = health();
    expect(paths.retryAt(path('127.0.0.2'), T0)).toBeNull();
    paths.failed(path('127.0.0.2'), failure());
    // Further failures of deliveries already under way change nothing but the reason.
    paths.failed(path('127.0.0.2'), failure('greeting'));
    expect(events).toEqual(['down 127.0.0.2']);
    expect(paths.retryAt(path('127.0.0.2'), T0 + 10)).toBe(T0 + 60_000);
    expect(paths.get(path('127.0.0.2'))?.outcome.stage).toBe('greeting');
    // Another IP, the default address: other paths.
    expect(paths.retryAt(path('127.0.0.3'), T0)).toBeNull();
    expect(paths.retryAt(path(null), T0)).toBeNull();
    expect(paths.ofSite(site)).toHaveLength(1);
    expect(paths.ofSite('mx.other.test')).toEqual([]);
  });

  it('probes once per interval, doubling after each failed probe up to the maximum', () => {
    const { clock, paths } = health();
    paths.failed(path('127.0.0.2'), failure());
    expect(paths.nextProbeAt()).toBe(T0 + 60_000);
    expect(paths.dueProbes(T0 + 59_999)).toEqual([]);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      clock.set(paths.nextProbeAt()!);
      const [due] = paths.dueProbes(clock.now()) as [DownPath];
      // While the probe runs, a delivery waits one interval (the probe's success makes it sooner).
      expect(paths.retryAt(path('127.0.0.2'), clock.now())).toBe(clock.now() + due.intervalMs);
      paths.probeFailed(due, failure());
      waits.push(paths.nextProbeAt()! - clock.now());
    }
    expect(waits).toEqual([120_000, 240_000, 300_000, 300_000]);
    expect(paths.get(path('127.0.0.2'))?.probesFailed).toBe(4);
  });

  it('is up again with any connection that gets through, and tells of every connection', () => {
    const { paths, events } = health();
    paths.failed(path('127.0.0.2'), failure());
    paths.connected(path('127.0.0.3'));
    paths.connected(path('127.0.0.2'));
    expect(events).toEqual(['down 127.0.0.2', 'connected 127.0.0.3', 'connected 127.0.0.2 (was down)']);
    expect(paths.retryAt(path('127.0.0.2'), T0)).toBeNull();
    expect(paths.size).toBe(0);
  });

  it('remembers whether a delivery asked for a down path since its last probe', () => {
    const { paths } = health();
    paths.failed(path('127.0.0.2'), failure());
    expect(paths.get(path('127.0.0.2'))?.wanted).toBe(false);
    paths.retryAt(path('127.0.0.2'), T0);
    expect(paths.get(path('127.0.0.2'))?.wanted).toBe(true);
    paths.forget(path('127.0.0.2'));
    expect(paths.size).toBe(0);
  });

  it('counts refused, timed out and refused-at-the-greeting connections as a site out of reach, not a missing egress address', () => {
    expect(unreachable(failure('connect').outcome)).toBe(true);
    expect(unreachable(failure('greeting').outcome)).toBe(true);
    expect(unreachable(failure('connect', 'egress-unavailable').outcome)).toBe(false);
    expect(unreachable(failure('ehlo').outcome)).toBe(false);
    expect(unreachable(failure('mail').outcome)).toBe(false);
  });
});
