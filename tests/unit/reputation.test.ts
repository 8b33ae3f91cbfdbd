import { describe, expect, it } from 'vitest';
import { classifyError, classifyReply } from '../../src/engine/classify.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createReputationTracker, reputationInputOf, reputationScore } from '../../src/ippool/reputation.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { manualClock } from '../helpers/manual-clock.ts';

const IP = '127.0.0.2';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function reply(raw: string): DeliveryOutcome {
  return classifyReply({ code: Number(raw.slice(0, 3)), text: raw, stage: 'rcpt', remoteHost: 'mx.example.net', egressIp: IP }, BOUNCE_RULES);
}

const delivered = reply('250 2.0.0 OK 1700000000 a1si1 - gsmtp');
const rateLimited = reply('421 4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.');
const blocklisted = reply('554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org');
const unknownUser = reply('550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown');

describe('reputationInputOf', () => {
  const cases: Array<[what: string, outcome: DeliveryOutcome, expected: string | null]> = [
    ['delivered', delivered, 'accepted'],
    ['Gmail 421 4.7.28', rateLimited, 'deferred'],
    ['Yahoo TSS04', reply('421 4.7.0 [TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume or user complaints'), 'deferred'],
    ['Microsoft 4.7.650', reply('451 4.7.650 The mail server [127.0.0.2] has been temporarily rate limited due to IP reputation. (S775)'), 'deferred'],
    ['temporary spam refusal', reply('451 4.7.1 Message deferred: suspected spam'), 'deferred'],
    ['temporary policy refusal citing reputation', reply('450 4.7.1 Client host rejected: poor sender reputation score'), 'deferred'],
    ['Spamhaus listing', blocklisted, 'blocked'],
    ['Microsoft S3150', reply("550 5.7.1 Unfortunately, messages from [127.0.0.2] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150)."), 'blocked'],
    ['DMARC policy refusal', reply('550 5.7.26 Unauthenticated email from example.com is not accepted due to domain DMARC policy'), 'blocked'],
    ['Gmail authentication deferral (the sender domain, not the IP)', reply('421 4.7.26 This mail has been rate limited because it is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.'), null],
    ['Gmail SPF deferral', reply("421 4.7.27 Your email has been rate limited because SPF authentication didn't pass for this message."), null],
    ['Gmail From alignment deferral', reply("421 4.7.32 Your email has been rate limited because the From: header (RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM organizational domain."), null],
    ['unknown user', unknownUser, null],
    ['mailbox full', reply('452 4.2.2 The email account that you tried to reach is over quota'), null],
    ['per-recipient receiving rate', reply('450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered'), null],
    ['greylisting', reply('451 4.7.1 <x@example.org>: Recipient address rejected: Greylisted, please try again later'), null],
    ['content refusal', reply('554 5.6.0 Message content rejected'), null],
    ['server trouble', reply('451 4.3.0 Temporary local problem'), null],
    ['connection refused', classifyError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), { stage: 'connect', remoteHost: 'mx', egressIp: IP }, BOUNCE_RULES), null],
    ['DNS failure', classifyError(Object.assign(new Error('queryMx ENOTFOUND'), { code: 'ENOTFOUND' }), { stage: 'dns', remoteHost: null, egressIp: IP }, BOUNCE_RULES), null],
    [
      'no mail domain',
      { disposition: 'permanent', code: null, enhanced: '5.1.10', response: 'example.invalid has no MX', stage: 'dns', bounceClass: 'no-mail-domain', remoteHost: null, egressIp: IP },
      null,
    ],
    ['local wait for an eligible IP', { ...delivered, disposition: 'throttled', code: null, bounceClass: 'none' }, null],
  ];

  it.each(cases)('%s -> %s', (_what, outcome, expected) => {
    expect(reputationInputOf(outcome)).toBe(expected);
  });
});

describe('reputationScore', () => {
  it('is accepted / (accepted + 0.5 deferred + 2 blocked + 10 complaints)', () => {
    expect(reputationScore({ accepted: 100, deferred: 0, blocked: 0, complaints: 0 }, 20)).toBe(1);
    expect(reputationScore({ accepted: 50, deferred: 50, blocked: 0, complaints: 0 }, 20)).toBeCloseTo(50 / 75);
    expect(reputationScore({ accepted: 80, deferred: 0, blocked: 20, complaints: 0 }, 20)).toBeCloseTo(80 / 120);
    expect(reputationScore({ accepted: 100, deferred: 0, blocked: 0, complaints: 1 }, 20)).toBeCloseTo(100 / 110);
    expect(reputationScore({ accepted: 0, deferred: 30, blocked: 0, complaints: 0 }, 20)).toBe(0);
  });

  it('is null below minSamples outcomes (complaints are not outcomes)', () => {
    expect(reputationScore({ accepted: 19, deferred: 0, blocked: 0, complaints: 5 }, 20)).toBeNull();
    expect(reputationScore({ accepted: 10, deferred: 5, blocked: 5, complaints: 0 }, 20)).toBeCloseTo(10 / 22.5);
  });
});

describe('createReputationTracker', () => {
  it('counts outcomes per (IP, provider) and scores them', () => {
    const clock = manualClock(1_700_000_000_000);
    const tracker = createReputationTracker({ windowMs: HOUR, minSamples: 20 });
    for (let i = 0; i < 30; i++) tracker.record(IP, 'gmail', delivered, clock.now());
    for (let i = 0; i < 10; i++) tracker.record(IP, 'gmail', rateLimited, clock.now());
    tracker.record(IP, 'gmail', blocklisted, clock.now());
    tracker.recordComplaint(IP, 'gmail', clock.now());
    tracker.record(IP, 'yahoo', delivered, clock.now());
    tracker.record('127.0.0.3', 'gmail', blocklisted, clock.now());

    expect(tracker.snapshot(IP, 'gmail', clock.now())).toEqual({
      accepted: 30,
      deferred: 10,
      blocked: 1,
      complaints: 1,
      score: 30 / (30 + 5 + 2 + 10),
    });
    expect(tracker.snapshot(IP, 'yahoo', clock.now())).toEqual({ accepted: 1, deferred: 0, blocked: 0, complaints: 0, score: null });
    expect(tracker.snapshot('127.0.0.3', 'gmail', clock.now())).toMatchObject({ accepted: 0, blocked: 1 });
    expect(tracker.snapshot('127.0.0.9', 'gmail', clock.now())).toEqual({ accepted: 0, deferred: 0, blocked: 0, complaints: 0, score: null });
  });

  it('ignores unknown users and network failures', () => {
    const clock = manualClock(1_700_000_000_000);
    const tracker = createReputationTracker({ windowMs: HOUR, minSamples: 20 });
    for (let i = 0; i < 20; i++) tracker.record(IP, 'gmail', delivered, clock.now());
    for (let i = 0; i < 500; i++) tracker.record(IP, 'gmail', unknownUser, clock.now());
    tracker.record(IP, 'gmail', classifyError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), { stage: 'data', remoteHost: 'mx', egressIp: IP }, BOUNCE_RULES), clock.now());
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toEqual({ accepted: 20, deferred: 0, blocked: 0, complaints: 0, score: 1 });
  });

  it('slides: outcomes older than the window stop counting, bucket by bucket', () => {
    // Start on a bucket boundary so the arithmetic below is exact.
    const clock = manualClock(1_700_000_000_000 - (1_700_000_000_000 % MINUTE));
    const tracker = createReputationTracker({ windowMs: HOUR, minSamples: 1, bucketMs: MINUTE });
    for (let i = 0; i < 10; i++) tracker.record(IP, 'gmail', rateLimited, clock.now());
    clock.advance(30 * MINUTE);
    for (let i = 0; i < 10; i++) tracker.record(IP, 'gmail', delivered, clock.now());
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toMatchObject({ accepted: 10, deferred: 10, score: 10 / 15 });

    // 59 minutes after the deferrals they are still in the window; at 60 they have left it.
    clock.advance(29 * MINUTE + 59_999);
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toMatchObject({ accepted: 10, deferred: 10 });
    clock.advance(1);
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toMatchObject({ accepted: 10, deferred: 0, score: 1 });

    clock.advance(30 * MINUTE);
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toEqual({ accepted: 0, deferred: 0, blocked: 0, complaints: 0, score: null });
  });

  it('a complaint arriving later counts in the window at its arrival', () => {
    const clock = manualClock(0);
    const tracker = createReputationTracker({ windowMs: HOUR, minSamples: 20 });
    for (let i = 0; i < 40; i++) tracker.record(IP, 'outlook', delivered, clock.now());
    clock.advance(50 * MINUTE);
    tracker.recordComplaint(IP, 'outlook', clock.now());
    tracker.recordComplaint(IP, 'outlook', clock.now());
    expect(tracker.snapshot(IP, 'outlook', clock.now()).score).toBeCloseTo(40 / 60);
    // The deliveries leave the window; the complaints stay, but with no outcomes there is no score.
    clock.advance(20 * MINUTE);
    expect(tracker.snapshot(IP, 'outlook', clock.now())).toEqual({ accepted: 0, deferred: 0, blocked: 0, complaints: 2, score: null });
  });

  it('reuses one ring of buckets per pair across many windows (bounded memory) and forgets idle pairs', () => {
    const clock = manualClock(0);
    const tracker = createReputationTracker({ windowMs: 10 * MINUTE, minSamples: 1, bucketMs: MINUTE });
    // Ten windows of steady traffic: the counts are those of the last window only.
    for (let i = 0; i < 100; i++) {
      tracker.record(IP, 'gmail', delivered, clock.now());
      clock.advance(MINUTE);
    }
    clock.advance(-MINUTE);
    expect(tracker.snapshot(IP, 'gmail', clock.now()).accepted).toBe(10);

    for (let i = 0; i < 100; i++) tracker.record(`10.0.0.${i}`, 'gmail', delivered, clock.now());
    expect(tracker.entries(clock.now())).toHaveLength(101);
    clock.advance(10 * MINUTE);
    expect(tracker.entries(clock.now())).toEqual([]);
  });

  it('drops records too old for the ring slot they would reuse', () => {
    const clock = manualClock(0);
    const tracker = createReputationTracker({ windowMs: 10 * MINUTE, minSamples: 1, bucketMs: MINUTE });
    clock.set(20 * MINUTE);
    tracker.record(IP, 'gmail', delivered, clock.now());
    // 10 minutes earlier maps to the same slot: it is outside the window and must not count.
    tracker.record(IP, 'gmail', rateLimited, 10 * MINUTE);
    expect(tracker.snapshot(IP, 'gmail', clock.now())).toMatchObject({ accepted: 1, deferred: 0 });
  });

  it('lists every pair with its snapshot for metrics', () => {
    const tracker = createReputationTracker({ windowMs: HOUR, minSamples: 1 });
    tracker.record(IP, 'gmail', delivered, 0);
    tracker.record(IP, 'yahoo', rateLimited, 0);
    expect(tracker.entries(0)).toEqual([
      { ip: IP, provider: 'gmail', snapshot: { accepted: 1, deferred: 0, blocked: 0, complaints: 0, score: 1 } },
      { ip: IP, provider: 'yahoo', snapshot: { accepted: 0, deferred: 1, blocked: 0, complaints: 0, score: 0 } },
    ]);
  });

  it('rejects settings that cannot work', () => {
    expect(() => createReputationTracker({ windowMs: 0, minSamples: 20 })).toThrow(RangeError);
    expect(() => createReputationTracker({ windowMs: HOUR, minSamples: 0 })).toThrow(RangeError);
    expect(() => createReputationTracker({ windowMs: HOUR, minSamples: 20, bucketMs: 2 * HOUR })).toThrow(RangeError);
  });
});
