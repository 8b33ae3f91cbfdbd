import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classifyReply } from '../../src/engine/classify.ts';
import { ReactionEngine, loadReactionRules } from '../../src/ippool/reaction-rules.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';

/**
 * The built-in rules of config/reaction-rules.yaml against replies as the large providers send
 * them (multi-line where they send multi-line), classified the way the deliverer classifies them.
 */

const BUILTIN = fileURLToPath(new URL('../../config/reaction-rules.yaml', import.meta.url));
const rules = loadReactionRules(BUILTIN);
const IP = '203.0.113.7';
const SITE = 'mx.example.net';

function outcomeOf(raw: string) {
  const code = Number(raw.slice(0, 3));
  return classifyReply({ code, text: raw, stage: 'rcpt', remoteHost: 'mx.example.net', egressIp: IP }, BOUNCE_RULES);
}

function ruleFor(raw: string, provider: string): string | null {
  return new ReactionEngine(rules).match({ provider, outcome: outcomeOf(raw) })?.name ?? null;
}

const gmailLines = (code: string, lines: string[]) =>
  lines.map((line, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${line}`).join('\r\n');

/**
 * Gmail's sender-authentication replies, as Google's list of SMTP errors words them (the
 * temporary ones say "rate limited": what Gmail limits is the sender's unauthenticated mail).
 */
const GMAIL_AUTHENTICATION = [
  gmailLines('421', [
    '4.7.26 This mail has been rate limited because it is unauthenticated. Gmail',
    '4.7.26 requires all senders to authenticate with either SPF or DKIM.',
    '4.7.26 Authentication results: DKIM = did not pass SPF [sender.example] with ip:',
    `4.7.26 [${IP}] = did not pass For instructions on setting up authentication, go to`,
    '4.7.26  https://support.google.com/mail/answer/81126#authentication a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('451', [
    "4.7.26 Unauthenticated email from sender.example is not accepted due to domain's",
    '4.7.26 DMARC policy, but temporary DNS failures prevent authentication. Please contact',
    '4.7.26 the administrator of sender.example domain if this was a legitimate mail. To learn',
    '4.7.26 about the DMARC initiative, go to https://support.google.com/mail/?p=DmarcRejection a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('550', [
    '5.7.26 This mail has been blocked because the sender is unauthenticated.',
    '5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.',
    '5.7.26  https://support.google.com/mail/answer/81126#authentication a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('550', [
    "5.7.26 Unauthenticated email from sender.example is not accepted due to domain's",
    '5.7.26 DMARC policy. Please contact the administrator of sender.example domain if',
    '5.7.26 this was a legitimate mail. Please visit',
    '5.7.26  https://support.google.com/mail/answer/2451690 to learn about the',
    '5.7.26 DMARC initiative. a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('421', [
    "4.7.27 Your email has been rate limited because SPF authentication didn't pass for",
    '4.7.27 this message. Gmail requires all bulk email senders to authenticate their',
    `4.7.27 email with SPF. Authentication results: SPF [sender.example] with IP address: [${IP}] = Did not pass.`,
    '4.7.27  https://support.google.com/mail/answer/81126#authentication a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('550', [
    '5.7.27 This mail has been blocked because SPF does not pass. Gmail requires all',
    '5.7.27 senders to authenticate with SPF. a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('421', [
    '4.7.32 Your email has been rate limited because the From: header (RFC5322) in this',
    "4.7.32 message isn't aligned with either the authenticated SPF or DKIM organizational",
    '4.7.32 domain. a1si1234567qtb.100 - gsmtp',
  ]),
  gmailLines('550', [
    "5.7.32 This mail has been blocked because the From: header (RFC5322) isn't aligned",
    '5.7.32 with either the authenticated SPF or DKIM organizational domain. a1si1234567qtb.100 - gsmtp',
  ]),
];

const cases: Array<{ rule: string; provider: string; reply: string }> = [
  {
    rule: 'spamhaus-listing',
    provider: 'other',
    reply: `554 5.7.1 Service unavailable; Client host [${IP}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/${IP}`,
  },
  {
    rule: 'spamhaus-listing',
    provider: 'yahoo',
    reply: `553 5.7.1 [BL21] Connections will not be accepted from ${IP}, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes`,
  },
  {
    rule: 'spamhaus-listing',
    provider: 'other',
    reply: `550 5.7.1 Rejected: ${IP} listed at sbl-xbl.spamhaus.org`,
  },
  {
    rule: 'dnsbl-listing',
    provider: 'other',
    reply: `554 5.7.1 Service unavailable; Client host [${IP}] blocked using bl.spamcop.net; Blocked - see https://www.spamcop.net/bl.shtml?${IP}`,
  },
  {
    rule: 'dnsbl-listing',
    provider: 'other',
    reply: `554 Service unavailable; Client host [${IP}] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip=${IP}`,
  },
  {
    rule: 'gmail-ip-blocked',
    provider: 'gmail',
    reply: gmailLines('550', [
      `5.7.1 [${IP}      12] Our system has detected an unusual rate of`,
      '5.7.1 unsolicited mail originating from your IP address. To protect our',
      '5.7.1 users from spam, mail sent from your IP address has been blocked.',
      '5.7.1 Please visit',
      '5.7.1  https://support.google.com/mail/?p=UnsolicitedIPError to review our',
      '5.7.1 Bulk Email Senders Guidelines. d9443c01a7336-2f3e1a1b2c3si1234567ad.123 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-ip-blocked',
    provider: 'gmail',
    reply: gmailLines('550', [
      `5.7.1 [${IP}] Our system has detected that this message is likely`,
      '5.7.1 suspicious due to the very low reputation of the sending IP address.',
      '5.7.1 To best protect our users from spam, the message has been blocked.',
      '5.7.1 Please visit https://support.google.com/mail/answer/188131 for more',
      '5.7.1 information. a640c23a62f3a-a8d25a1b2c3si123456766b.321 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-ip-not-authorized',
    provider: 'gmail',
    reply: gmailLines('550', [
      `5.7.1 [${IP}] The IP you're using to send mail is not authorized to`,
      '5.7.1 send email directly to our servers. Please use the SMTP relay at your',
      '5.7.1 service provider instead. For more information, go to',
      '5.7.1  https://support.google.com/mail/?p=NotAuthorizedError 5b1f17b1804b1-42c7a1b2c3si1234567f9.77 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-unsolicited-messages',
    provider: 'gmail',
    reply: gmailLines('550', [
      `5.7.1 [${IP}      12] Our system has detected that this message is`,
      '5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,',
      '5.7.1 this message has been blocked. For more information, go to',
      '5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError',
      '5.7.1  to review our Bulk Email Senders Guidelines. 2adb3069b0e04-53a1b2c3si123456e87.456 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-unusual-rate',
    provider: 'gmail',
    reply: gmailLines('421', [
      `4.7.28 [${IP}      15] Our system has detected an unusual rate of`,
      '4.7.28 unsolicited mail originating from your IP address. To protect our',
      '4.7.28 users from spam, mail sent from your IP address has been temporarily',
      '4.7.28 rate limited. Please visit',
      '4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to',
      '4.7.28 review our Bulk Email Senders Guidelines. 41be03b00d2f7-7db1a2b3c4si123456a12.34 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-unusual-rate',
    provider: 'gmail',
    reply: gmailLines('421', [
      '4.7.28 Gmail has detected an unusual rate of unsolicited mail. To protect',
      '4.7.28 our users from spam, mail has been temporarily rate limited. Please',
      '4.7.28 visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to',
      '4.7.28 review our Bulk Email Senders Guidelines. m17-20020a67f711000000b0045d8a438106si295017vso.199 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-domain-rate',
    provider: 'gmail',
    reply: gmailLines('421', [
      '4.7.28 Gmail has detected an unusual rate of unsolicited mail containing one',
      '4.7.28 of your URL domains. To protect our users from spam, mail with the URL',
      '4.7.28 has been temporarily limited. For more information, go to',
      '4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to review',
      '4.7.28 our Bulk Email Senders Guidelines. 6a1803df08f44-6c3a1b2c3si1234566d6.12 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-domain-rate',
    provider: 'gmail',
    reply: gmailLines('421', [
      '4.7.28 Gmail has detected an unusual rate of unsolicited mail originating',
      '4.7.28 from your DKIM domain. To protect our users from spam, mail sent from',
      '4.7.28 your domain has been temporarily rate limited. For more information,',
      '4.7.28 go to https://support.google.com/mail/?p=UnsolicitedRateLimitError to',
      '4.7.28 review our Bulk Email Senders Guidelines. 98e67ed59e1d1-2e2a1b2c3si123456a91.7 - gsmtp',
    ]),
  },
  {
    rule: 'gmail-rate-limited',
    provider: 'gmail',
    reply: gmailLines('421', [
      `4.7.0 [${IP}      15] Our system has detected that this message is`,
      '4.7.0 suspicious due to the very low reputation of the sending IP address.',
      '4.7.0 To protect our users from spam, mail sent from your IP address has',
      '4.7.0 been temporarily rate limited. Please visit',
      '4.7.0  https://support.google.com/mail/answer/188131 for more information. a1si1234567qtb.100 - gsmtp',
    ]),
  },
  ...GMAIL_AUTHENTICATION.map((reply) => ({ rule: 'gmail-sender-authentication', provider: 'gmail', reply })),
  {
    rule: 'yahoo-tss09',
    provider: 'yahoo',
    reply: `553 5.7.2 [TSS09] All messages from ${IP} will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes`,
  },
  {
    rule: 'yahoo-tss05',
    provider: 'yahoo',
    reply: `421 4.7.0 [TSS05] Messages from ${IP} temporarily deferred due to user complaints - 4.16.56.1; see https://postmaster.yahooinc.com/error-codes`,
  },
  {
    rule: 'yahoo-tss04',
    provider: 'yahoo',
    reply: `421 4.7.0 [TSS04] Messages from ${IP} temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes`,
  },
  {
    rule: 'yahoo-tss04',
    provider: 'yahoo',
    reply: `421 4.7.0 [TS01] Messages from ${IP} temporarily deferred due to user complaints - 4.16.55.1; see http://postmaster.yahoo.com/421-ts01.html`,
  },
  {
    rule: 'outlook-s3150',
    provider: 'outlook',
    reply: `550 5.7.1 Unfortunately, messages from [${IP}] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [VE1EUR01FT080.eop-EUR01.prod.protection.outlook.com]`,
  },
  {
    rule: 'outlook-s3150',
    provider: 'outlook',
    reply: `550 5.7.1 Unfortunately, messages from [${IP}] weren't sent. Please contact your Internet service provider since part of their network is on our block list (AS3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.`,
  },
  {
    rule: 'outlook-s3140',
    provider: 'outlook',
    reply: `550 5.7.1 Unfortunately, messages from [${IP}] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [DM6NAM12FT056.eop-nam12.prod.protection.outlook.com]`,
  },
  {
    rule: 'outlook-banned-ip',
    provider: 'outlook',
    reply: `550 5.7.606 Access denied, banned sending IP [${IP}]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 (AS16012609) [AM4PEPF00025F97.EURPRD83.prod.outlook.com]`,
  },
  {
    rule: 'outlook-banned-ip',
    provider: 'outlook',
    reply: '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) [BN8NAM12FT041.eop-nam12.prod.protection.outlook.com]',
  },
  {
    rule: 'outlook-ip-reputation',
    provider: 'outlook',
    reply: `451 4.7.650 The mail server [${IP}] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11BBB5A8C2F1E3D4] [DM6NAM12FT011.eop-nam12.prod.protection.outlook.com]`,
  },
  {
    rule: 'outlook-ip-reputation',
    provider: 'outlook',
    reply: `451 4.7.651 The mail server [${IP}] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3114) [BL02EPF0001A0FF.namprd09.prod.outlook.com]`,
  },
  {
    rule: 'outlook-server-busy',
    provider: 'outlook',
    reply: `451 4.7.500 Server busy. Please try again later from [${IP}]. (S77714) [DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]`,
  },
  {
    rule: 'rate-limited',
    provider: 'other',
    reply: '450 4.7.1 Client host rejected: rate limited, try again later',
  },
  {
    rule: 'rate-limited',
    provider: 'other',
    reply: `421 4.7.0 mx.example.net Service temporarily unavailable: message rate limit exceeded for ${IP}`,
  },
  {
    rule: 'rate-limited',
    provider: 'other',
    reply: `451 Temporary failure: your IP ${IP} is being throttled, please slow down`,
  },
  {
    rule: 'too-many-connections',
    provider: 'other',
    reply: '421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later.',
  },
  {
    rule: 'too-many-connections',
    provider: 'outlook',
    reply: '421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel',
  },
  {
    rule: 'too-many-connections',
    provider: 'other',
    reply: `421 Too many connections from your IP (${IP})`,
  },
  {
    rule: 'try-again-later',
    provider: 'gmail',
    reply: gmailLines('421', ['4.7.0 Try again later, closing connection. (EHLO)', '4.7.0  For more information, go to https://support.google.com/mail/answer/7720 a1si1234567qtb.100 - gsmtp']),
  },
  {
    rule: 'try-again-later',
    provider: 'other',
    reply: '450 4.3.2 Service currently unavailable, please try again later',
  },
];

describe('built-in reaction rules', () => {
  it.each(cases)('$rule matches a $provider reply: $reply', ({ rule, provider, reply }) => {
    expect(ruleFor(reply, provider)).toBe(rule);
  });

  it('every built-in rule is covered by a reply above', () => {
    const covered = new Set(cases.map((c) => c.rule));
    expect(rules.map((r) => r.name).filter((name) => !covered.has(name))).toEqual([]);
  });

  it('provider rules apply only to their provider: a Gmail reply from another provider falls to the generic rules', () => {
    const reply = gmailLines('421', [
      `4.7.28 [${IP}      15] Our system has detected an unusual rate of unsolicited mail originating from your IP address.`,
      '4.7.28 Mail sent from your IP address has been temporarily rate limited. - gsmtp',
    ]);
    expect(ruleFor(reply, 'gmail')).toBe('gmail-unusual-rate');
    expect(ruleFor(reply, 'other')).toBe('rate-limited');
    expect(ruleFor(`550 5.7.1 Unfortunately, messages from [${IP}] weren't sent (S3150).`, 'gmail')).toBeNull();
  });

  it("Gmail's authentication replies restrict nothing; from another provider the temporary ones would count as rate limits", () => {
    const engine = new ReactionEngine(rules);
    for (const reply of GMAIL_AUTHENTICATION) {
      const [reaction] = engine.evaluate({ ip: IP, provider: 'gmail', site: SITE, outcome: outcomeOf(reply), now: 0 });
      expect(reaction?.action).toEqual({ kind: 'none' });
    }
    expect(ruleFor(GMAIL_AUTHENTICATION[0]!, 'other')).toBe('rate-limited');
  });

  const ordinary: Array<{ what: string; provider: string; reply: string }> = [
    { what: 'unknown user', provider: 'other', reply: '550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table' },
    { what: 'unknown user (plain)', provider: 'other', reply: '550 5.1.1 user unknown' },
    {
      what: 'Gmail unknown user',
      provider: 'gmail',
      reply: gmailLines('550', [
        "5.1.1 The email account that you tried to reach does not exist. Please try",
        "5.1.1 double-checking the recipient's email address for typos or",
        '5.1.1 unnecessary spaces. For more information, go to',
        '5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si1234567qtb.100 - gsmtp',
      ]),
    },
    { what: 'Microsoft unknown user', provider: 'outlook', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' },
    { what: 'mailbox full', provider: 'other', reply: '452 4.2.2 mailbox full' },
    {
      what: 'Gmail over quota',
      provider: 'gmail',
      reply: '452-4.2.2 The recipient\'s inbox is out of storage space. Please direct the\r\n452-4.2.2 recipient to\r\n452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp a1si1234567qtb.100 - gsmtp',
    },
    {
      what: 'Gmail per-recipient receiving rate',
      provider: 'gmail',
      reply: gmailLines('450', [
        '4.2.1 The user you are trying to contact is receiving mail at a rate that',
        '4.2.1 prevents additional messages from being delivered. Please resend your',
        '4.2.1 message at a later time. If the user is able to receive mail at that',
        '4.2.1 time, your message will be delivered. For more information, go to',
        '4.2.1  https://support.google.com/mail/?p=ReceivingRate a1si1234567qtb.100 - gsmtp',
      ]),
    },
    { what: 'Postgrey greylisting', provider: 'other', reply: '450 4.2.0 <rcpt@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html' },
    { what: 'greylisting saying "try again later"', provider: 'other', reply: '451 4.7.1 Greylisting in action, please try again later' },
    {
      what: 'Spamhaus DBL (a domain listing, not the IP)',
      provider: 'other',
      reply: '554 5.7.1 Service unavailable; Sender address [news@bad.example] blocked using dbl.spamhaus.org; https://www.spamhaus.org/query/domain/bad.example',
    },
    { what: 'message too large', provider: 'other', reply: '552 5.3.4 Message size exceeds fixed maximum message size' },
    { what: 'relay denied', provider: 'other', reply: '554 5.7.1 <rcpt@example.org>: Relay access denied' },
    { what: 'temporary local problem', provider: 'other', reply: '451 4.3.0 Error: queue file write error' },
    { what: 'server shutting down', provider: 'outlook', reply: '421 4.3.2 Service not available, closing transmission channel' },
    { what: 'too many recipients', provider: 'other', reply: '452 4.5.3 Error: too many recipients' },
  ];

  it.each(ordinary)('ordinary failures match nothing: $what', ({ provider, reply }) => {
    expect(ruleFor(reply, provider)).toBeNull();
  });

  it('a delivered reply matches nothing, whatever its wording', () => {
    const engine = new ReactionEngine(rules);
    const outcome = outcomeOf('250 2.0.0 OK, rate limited next time (S3150) zen.spamhaus.org - gsmtp');
    expect(outcome.disposition).toBe('delivered');
    expect(engine.match({ provider: 'outlook', outcome })).toBeNull();
    expect(engine.evaluate({ ip: IP, provider: 'outlook', site: SITE, outcome, now: 0 })).toEqual([]);
  });
});
