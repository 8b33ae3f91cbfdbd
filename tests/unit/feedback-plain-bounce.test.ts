import { describe, expect, it } from 'vitest';
import { parsePlainBounce } from '../../src/feedback/plain-bounce.ts';
import { readReportMessage } from '../../src/feedback/report-message.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { feedbackFixture } from '../helpers/feedback-fixtures.ts';

async function bounceOf(name: string) {
  return parsePlainBounce(await readReportMessage(feedbackFixture(name)), BOUNCE_RULES);
}

describe('plain-text bounces (not RFC 3464)', () => {
  it("reads qmail's enhanced code alone (#5.1.1) and its wording", async () => {
    expect(await bounceOf('qmail-no-mailbox.eml')).toEqual({
      disposition: 'permanent', code: null, enhanced: '5.1.1', text: '5.1.1 Sorry, no mailbox here by that name.', bounceClass: 'unknown-user', recipients: ['nosuch@qmail.test'],
    });
  });

  it('reads the remote reply qmail quotes ("Remote host said:")', async () => {
    expect(await bounceOf('qmail-remote-mailbox-full.eml')).toEqual({
      disposition: 'permanent', code: 552, enhanced: '5.2.2', text: '5.2.2 <full@dest.test>: Mailbox full, over quota', bounceClass: 'mailbox-full', recipients: ['full@dest.test'],
    });
  });

  it("joins the lines of a multi-line reply Exim quotes, and stops before the returned copy", async () => {
    expect(await bounceOf('exim-user-unknown.eml')).toEqual({
      disposition: 'permanent',
      code: 550,
      enhanced: '5.1.1',
      text: "5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
      bounceClass: 'unknown-user',
      recipients: ['user@dest.test'],
    });
  });

  it("takes Exim's delay warning as transient", async () => {
    expect(await bounceOf('exim-delayed.eml')).toMatchObject({ disposition: 'transient', code: 451, enhanced: '4.7.1', bounceClass: 'policy' });
  });

  it("reads Sendmail's reason in parentheses", async () => {
    expect(await bounceOf('sendmail-mailbox-full.eml')).toMatchObject({ disposition: 'permanent', code: 552, enhanced: '5.2.2', text: '5.2.2 Mailbox full', bounceClass: 'mailbox-full', recipients: ['full@dest.test'] });
  });

  it('classifies a notice without any code by its wording', () => {
    const text = 'Delivery has failed to these recipients:\n\nuser@dest.test\nThe recipient mailbox is full and can\'t accept messages now.\n';
    expect(parsePlainBounce({ subject: 'Undeliverable: Your weekly digest', text }, BOUNCE_RULES)).toMatchObject({
      disposition: 'permanent', code: null, enhanced: '5.0.0', bounceClass: 'mailbox-full', recipients: ['user@dest.test'],
    });
    expect(parsePlainBounce({ subject: 'Mail delivery failed', text: 'Your message was not accepted.' }, BOUNCE_RULES)).toMatchObject({ disposition: 'permanent', bounceClass: 'other' });
  });

  it('is no bounce: an automatic reply, or a person writing back', async () => {
    expect(await bounceOf('out-of-office.eml')).toBeNull();
    expect(parsePlainBounce({ subject: 'Re: Your weekly digest', text: 'Thanks, see you at 5 pm on the 4.1.2026 meeting.' }, BOUNCE_RULES)).toBeNull();
  });

  it('does not take an IP address or a version number for an enhanced code', () => {
    const text = 'Delivery to the following recipient failed permanently:\n\n     user@dest.test\n\nThe server at 4.2.2.1 (Postfix 4.1.2-beta) refused it.\n';
    expect(parsePlainBounce({ subject: 'Delivery Status Notification (Failure)', text }, BOUNCE_RULES)).toMatchObject({ code: null, enhanced: '5.0.0', disposition: 'permanent' });
  });
});
