import { readFileSync } from 'node:fs';

/**
 * Where the API commands send their requests and the token they send. The token comes from a
 * file (--token-file) or the environment (ROOKERY_API_TOKEN), never from an argument: the
 * arguments of every process are readable by every user of the machine (ps, /proc).
 */

export interface ApiConnection {
  /** The base URL, ending in `/`; a route path is resolved below it (a proxy may serve the API under a prefix). */
  base: URL;
  token: string;
}

/** The control API's own default listener (api.listen). */
export const DEFAULT_API_URL = 'http://127.0.0.1:8025';

/** A connection that cannot be set up: its message names the option or variable at fault. */
export class ConnectionSetupError extends Error {}

/** What `Authorization: Bearer` carries (RFC 6750 b64token), as the API reads it. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function resolveConnection(values: Record<string, unknown>, env: NodeJS.ProcessEnv): ApiConnection {
  return { base: baseUrl(values, env), token: token(values, env) };
}

function baseUrl(values: Record<string, unknown>, env: NodeJS.ProcessEnv): URL {
  const given = values.api as string | undefined;
  const [source, text] = given !== undefined ? ['--api', given] : env.ROOKERY_API_URL ? ['ROOKERY_API_URL', env.ROOKERY_API_URL] : [null, DEFAULT_API_URL];
  const where = source ?? 'the default API URL';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConnectionSetupError(`${where}: not a URL: ${JSON.stringify(text)} (e.g. ${DEFAULT_API_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConnectionSetupError(`${where}: not an http or https URL: ${url.protocol}`);
  // Credentials in a URL end up in shell history and process lists; the token has its own ways in.
  if (url.username || url.password) throw new ConnectionSetupError(`${where}: a user or password in the URL is not used; give the token with ROOKERY_API_TOKEN or --token-file`);
  if (url.search || url.hash) throw new ConnectionSetupError(`${where}: no query or fragment, only the scheme, host, port and an optional path prefix`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function token(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  const file = values['token-file'] as string | undefined;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConnectionSetupError(`--token-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const found = text.trim();
    // The content is never echoed: a file that is not a token may still hold a secret.
    if (!TOKEN.test(found)) throw new ConnectionSetupError(`--token-file ${file}: does not hold an API token (one line, as rookery token create prints it)`);
    return found;
  }
  const fromEnv = env.ROOKERY_API_TOKEN?.trim();
  if (fromEnv) {
    if (!TOKEN.test(fromEnv)) throw new ConnectionSetupError('ROOKERY_API_TOKEN: not an API token (one word, as rookery token create prints it)');
    return fromEnv;
  }
  throw new ConnectionSetupError('no API token: set ROOKERY_API_TOKEN or give --token-file PATH (rookery token create makes one)');
}
