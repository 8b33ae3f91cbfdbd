import { describe, expect, it } from 'vitest';
import type { BounceRule } from '../../src/engine/bounce-rules.ts';
import { classifyError, classifyReply, parseReply } from '../../src/engine/classify.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';

const ctx = { stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' } as const;

describe('parseReply', () => {
  it('reads code, enhanced code and text of a single-line reply', () => {
    expect(parseReply('550 5.1.1 <x@dest.test>: Recipient address rejected')).toEqual({
      code: 550,
      enhanced: '5.1.1',
      text: '5.1.1 <x@dest.test>: Recipient address rejected',
    });
  });

  it('joins a multi-line reply and keeps its enhanced code once', () => {
    const raw = '550-5.7.26 This mail is unauthenticated, which poses a security risk\r\n550-5.7.26 to the sender and Gmail users.\r\n550 5.7.26 Learn more';
    expect(parseReply(raw)).toEqual({
      code: 550,
      enhanced: '5.7.26',
      text: '5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users. Learn more',
    });
  });

  it('ignores an enhanced code whose class contradicts the basic code', () => {
    expect(parseReply('550 4.2.2 odd server')?.enhanced).toBeNull();
  });

  it('returns null for text that is not a reply', () => {
    expect(parseReply('Connection closed')).toBeNull();
  });
});

describe('classifyReply', () => {
  const cases: Array<[code: number, text: string, disposition: string, enhanced: string, bounceClass: string]> = [
    [250, '2.0.0 Ok: queued as 4B1C', 'delivered', '2.0.0', 'none'],
    [250, 'Ok', 'delivered', '2.0.0', 'none'],
    [550, '5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown', 'permanent', '5.1.1', 'unknown-user'],
    [550, '5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', 'permanent', '5.1.10', 'unknown-user'],
    [550, 'No such user here', 'permanent', '5.0.0', 'unknown-user'],
    [552, '5.2.2 Mailbox full', 'permanent', '5.2.2', 'mailbox-full'],
    [452, '4.2.2 The email account that you tried to reach is over quota', 'transient', '4.2.2', 'mailbox-full'],
    [552, 'Requested mail action aborted: exceeded storage allocation', 'permanent', '5.0.0', 'mailbox-full'],
    [552, '5.3.4 Message size exceeds fixed limit', 'permanent', '5.3.4', 'message-rejected'],
    [550, '5.7.1 Message rejected as spam by Content Filtering', 'permanent', '5.7.1', 'spam'],
    [554, '5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org', 'permanent', '5.7.1', 'spam'],
    [550, '5.7.26 Unauthenticated email from example.com is not accepted due to domain DMARC policy', 'permanent', '5.7.26', 'policy'],
    [554, '5.7.1 Relay access denied', 'permanent', '5.7.1', 'policy'],
    // Gmail's sender authentication: policy, though the temporary replies say "rate limited".
    [421, '4.7.26 This mail has been rate limited because it is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.', 'transient', '4.7.26', 'policy'],
    [421, "4.7.27 Your email has been rate limited because SPF authentication didn't pass for this message. Gmail requires all bulk email senders to authenticate their email with SPF.", 'transient', '4.7.27', 'policy'],
    [421, "4.7.32 Your email has been rate limited because the From: header (RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM organizational domain.", 'transient', '4.7.32', 'policy'],
    [550, '5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.', 'permanent', '5.7.26', 'policy'],
    [550, '5.7.27 This mail has been blocked because SPF does not pass. Gmail requires all senders to authenticate with SPF.', 'permanent', '5.7.27', 'policy'],
    [550, "5.7.32 This mail has been blocked because the From: header (RFC5322) isn't aligned with either the authenticated SPF or DKIM organizational domain.", 'permanent', '5.7.32', 'policy'],
    [421, '4.7.0 Try again later, closing connection.', 'transient', '4.7.0', 'rate-limited'],
    [450, '4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages', 'transient', '4.2.1', 'rate-limited'],
    [421, '4.7.28 Gmail has detected an unusual rate of unsolicited mail', 'transient', '4.7.28', 'rate-limited'],
    [451, 'Too many connections from your IP', 'transient', '4.0.0', 'rate-limited'],
    [451, '4.7.1 greylisted, try again', 'transient', '4.7.1', 'policy'],
    [421, 'Service not available, closing transmission channel', 'transient', '4.0.0', 'connection'],
    [451, '4.3.0 Temporary local problem', 'transient', '4.3.0', 'other'],
    [554, '5.6.0 Message content rejected', 'permanent', '5.6.0', 'message-rejected'],
    [503, '5.5.1 Error: need RCPT command', 'transient', '5.5.1', 'protocol'],
    [354, 'End data with <CR><LF>.<CR><LF>', 'transient', '4.0.0', 'protocol'],
  ];

  it.each(cases)('%i %s -> %s %s %s', (code, text, disposition, enhanced, bounceClass) => {
    const outcome = classifyReply({ code, text, ...ctx }, BOUNCE_RULES);
    expect(outcome).toMatchObject({ disposition, code, enhanced, bounceClass });
  });

  it('keeps the reply text and the context in the outcome', () => {
    expect(classifyReply({ code: 550, text: '550 5.1.1 no such user', ...ctx }, BOUNCE_RULES)).toEqual({
      disposition: 'permanent',
      code: 550,
      enhanced: '5.1.1',
      response: '5.1.1 no such user',
      stage: 'rcpt',
      bounceClass: 'unknown-user',
      remoteHost: 'mx.dest.test',
      egressIp: '127.0.0.2',
    });
  });

  it('writes out the control characters of a reply and of the host name, which the queue could not store as they are', () => {
    const outcome = classifyReply({ code: 250, text: '250 2.0.0 queued as \u0000ABC\u0007', ...ctx, remoteHost: 'mx\u001b.dest.test' }, BOUNCE_RULES);
    expect(outcome).toMatchObject({ response: '2.0.0 queued as \\x00ABC\\x07', remoteHost: 'mx\\x1b.dest.test' });
  });

  it('applies the first matching rule of a caller-supplied table', () => {
    const rules: BounceRule[] = [{ name: 'banana', origin: 'operator', text: /banana/i, bounceClass: 'policy' }, ...BOUNCE_RULES];
    expect(classifyReply({ code: 550, text: '5.1.1 banana', ...ctx }, rules).bounceClass).toBe('policy');
    expect(classifyReply({ code: 550, text: '5.1.1 banana', ...ctx }, BOUNCE_RULES).bounceClass).toBe('unknown-user');
  });
});

function errorWith(fields: Record<string, unknown>, message = 'failure'): Error {
  return Object.assign(new Error(message), fields);
}

describe('classifyError', () => {
  it('classifies a nodemailer error by the server reply it carries', () => {
    const err = errorWith({ code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 no such user', command: 'RCPT TO' });
    expect(classifyError(err, { ...ctx, stage: 'mail' }, BOUNCE_RULES)).toMatchObject({
      disposition: 'permanent',
      code: 550,
      enhanced: '5.1.1',
      stage: 'rcpt',
      bounceClass: 'unknown-user',
    });
  });

  it('reads the stage from the failed command: DATA refused vs message refused after the dot', () => {
    const data = errorWith({ code: 'EENVELOPE', responseCode: 554, response: '554 5.5.1 no valid recipients', command: 'DATA' });
    const dot = errorWith({ code: 'EMESSAGE', responseCode: 554, response: '554 5.6.0 content rejected', command: 'DATA' });
    expect(classifyError(data, ctx, BOUNCE_RULES).stage).toBe('data');
    expect(classifyError(dot, ctx, BOUNCE_RULES).stage).toBe('dot');
  });

  it('treats connection refused as transient connection failure', () => {
    const err = errorWith({ code: 'ECONNREFUSED', errno: -111 }, 'connect ECONNREFUSED 127.0.0.1:1');
    expect(classifyError(err, { ...ctx, stage: 'connect' }, BOUNCE_RULES)).toMatchObject({
      disposition: 'transient',
      code: null,
      stage: 'connect',
      bounceClass: 'connection',
      response: 'connection refused by mx.dest.test',
    });
  });

  it('sees the socket error code nodemailer moved to originalCode', () => {
    const err = errorWith({ code: 'ESOCKET', originalCode: 'ECONNRESET' }, 'read ECONNRESET');
    expect(classifyError(err, { ...ctx, stage: 'data' }, BOUNCE_RULES)).toMatchObject({ disposition: 'transient', bounceClass: 'connection', stage: 'data' });
  });

  it('explains an egress address missing from the host', () => {
    const err = errorWith({ code: 'EADDRNOTAVAIL' }, 'connect EADDRNOTAVAIL 192.0.2.10');
    const outcome = classifyError(err, { stage: 'connect', remoteHost: 'mx.dest.test', egressIp: '192.0.2.10' }, BOUNCE_RULES);
    expect(outcome).toMatchObject({ disposition: 'transient', bounceClass: 'egress-unavailable' });
    expect(outcome.response).toMatch(/egress address 192\.0\.2\.10 is not configured on this host/);
  });

  it('names the timeout that fired and its stage', () => {
    const greeting = errorWith({ code: 'ETIMEDOUT', timeoutType: 'GREETING_TIMEOUT' }, 'Greeting never received');
    expect(classifyError(greeting, { ...ctx, stage: 'connect' }, BOUNCE_RULES)).toMatchObject({
      disposition: 'transient',
      stage: 'greeting',
      bounceClass: 'connection',
      response: 'waiting for the greeting timed out with mx.dest.test',
    });
  });

  it('treats a TLS failure as transient', () => {
    const err = errorWith({ code: 'ETLS', command: 'STARTTLS' }, 'Error initiating TLS');
    expect(classifyError(err, { ...ctx, stage: 'ehlo' }, BOUNCE_RULES)).toMatchObject({ disposition: 'transient', stage: 'starttls', bounceClass: 'connection' });
  });

  it('bounces a message over the size the server announced', () => {
    const err = errorWith({ code: 'EMESSAGE', command: 'MAIL FROM' }, 'Message size larger than allowed 1000');
    expect(classifyError(err, ctx, BOUNCE_RULES)).toMatchObject({ disposition: 'permanent', enhanced: '5.3.4', bounceClass: 'message-rejected' });
  });

  it('keeps unknown local errors transient', () => {
    expect(classifyError(new Error('something odd'), ctx, BOUNCE_RULES)).toMatchObject({ disposition: 'transient', bounceClass: 'other', code: null });
    expect(classifyError('a string', ctx, BOUNCE_RULES)).toMatchObject({ disposition: 'transient', response: 'local error: a string' });
  });
});
