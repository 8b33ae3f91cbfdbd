import { stringify } from 'yaml';
import { generateApiToken, hashApiToken } from '../access/api-token.ts';
import { API_ROLES, apiNameSchema, type ApiRole } from '../config/api-schema.ts';
import type { CommandContext, CommandResult } from './main.ts';

/**
 * `rookery token create --name N --role R [--tenant T]`: makes a random API token, prints it once
 * and the api.tokens entry that holds only its hash. The token is not kept anywhere: whoever
 * loses it makes a new one. Bad options are usage errors (exit 2).
 */
export async function execute(values: Record<string, unknown>, _context: CommandContext): Promise<CommandResult> {
  const problems: string[] = [];
  const name = values.name as string | undefined;
  const role = values.role as string | undefined;
  const tenant = values.tenant as string | undefined;
  if (name === undefined) problems.push('--name is required');
  else if (!apiNameSchema.safeParse(name).success) problems.push(`--name ${JSON.stringify(name)}: ${apiNameSchema.safeParse(name).error!.issues[0]!.message}`);
  if (role === undefined) problems.push(`--role is required (${API_ROLES.join(', ')})`);
  else if (!(API_ROLES as readonly string[]).includes(role)) problems.push(`--role ${JSON.stringify(role)}: not a role: use one of ${API_ROLES.join(', ')}`);
  if (tenant !== undefined && !apiNameSchema.safeParse(tenant).success) problems.push(`--tenant ${JSON.stringify(tenant)}: ${apiNameSchema.safeParse(tenant).error!.issues[0]!.message}`);
  // The same rules as the configuration's (config/tenant-schema.ts), so the line printed is one it takes.
  if (role === 'sender' && tenant === undefined) problems.push('--tenant is required for role sender (a sender sends for one tenant)');
  if (role === 'admin' && tenant !== undefined) problems.push('--tenant: an admin token belongs to no tenant (it acts for all)');
  if (problems.length) {
    process.stderr.write(problems.map((p) => `rookery token create: ${p}\n`).join(''));
    return 2;
  }

  const token = generateApiToken();
  const entry = { name: name!, role: role as ApiRole, ...(tenant === undefined ? {} : { tenant }), hash: hashApiToken(token) };
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ token, entry })}\n`);
    return 0;
  }
  const line = stringify([entry], { collectionStyle: 'flow', lineWidth: 0 }).trim().replace(/^\[\s*(.*?)\s*\]$/, '- $1');
  process.stdout.write(
    `API token (shown only now; store it where its user keeps secrets):\n\n  ${token}\n\n` +
      `Add this entry under api.tokens in the configuration, then reload the daemon (systemctl reload rookery):\n\n  ${line}\n`,
  );
  return 0;
}
