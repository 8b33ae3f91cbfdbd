/**
 * How long a failed SMTP login takes for an unknown user and for a known user with a wrong
 * password, through the user directory the submission server checks credentials against. The two
 * must not differ, or the time of a reply tells which usernames exist. Tries alternate, so load
 * on the machine falls on both alike.
 *
 *   node --import tsx bench/auth-timing.ts --tries 200 --cost 32768
 */
import { parseArgs } from 'node:util';
import { hashPassword } from '../src/smtp/password-hash.ts';
import { resolveSmtpUsers, UserDirectory } from '../src/smtp/user-directory.ts';
import { percentile, round } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    tries: { type: 'string', default: '200' },
    /** scrypt N of the known user's hash; the default hash uses 16384. */
    cost: { type: 'string', default: '32768' },
  },
});
const tries = Number(args.tries);
const N = Number(args.cost);

const { users, problems } = resolveSmtpUsers([
  { username: 'app', passwordHash: await hashPassword('the-right-password', { N, r: 8, p: 1 }), allowedSenders: ['*'] },
  { username: 'shop', password: 'another-password', allowedSenders: ['*'] },
]);
if (problems.length) throw new Error(problems.join('\n'));
const directory = await UserDirectory.create(users);

async function timed(username: string): Promise<number> {
  const start = process.hrtime.bigint();
  if (await directory.authenticate(username, 'a-wrong-password')) throw new Error('a wrong password was accepted');
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const unknown: number[] = [];
const wrong: number[] = [];
for (let i = 0; i < tries; i++) {
  unknown.push(await timed(`nobody-${i}`));
  wrong.push(await timed('app'));
}
const row = (name: string, ms: number[]) => ({ case: name, median: round(percentile(ms, 50), 2), p10: round(percentile(ms, 10), 2), p90: round(percentile(ms, 90), 2) });
console.log(`scrypt N=${N} for the known user, ${tries} tries each (ms)`);
console.table([row('unknown user', unknown), row('wrong password', wrong)]);
