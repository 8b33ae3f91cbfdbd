import { readableBounded } from '../mail/remote-text.ts';
import { classifyFailure, classifyRecords, type BlocklistAnswer } from './blocklist-query.ts';

/**
 * One DNSBL lookup under a time limit: the A query of the name, and for a listing the TXT query
 * of the same name (the list's reason, often with a removal link). The resolver is
 * node:dns/promises' Resolver in the daemon and a fixture in tests.
 *
 * A failed query's error message names the query, and with a Spamhaus DQS zone the name holds
 * the customer's key: only the error's code ever leaves this file.
 *
 * The TXT reason is written by whoever runs the list's DNS (or answers in its place): it is
 * stored, logged, put in restrictions and shown in an operator's terminal, so its control
 * characters are written out and it is cut to REASON_MAX characters here, where it comes in.
 */

/** Longest reason kept: a list's text with its removal link fits, a flood does not. */
export const REASON_MAX = 300;

export interface BlocklistResolver {
  resolve4(name: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
}

export type BlocklistLookup = BlocklistAnswer & { reason?: string | null };

export async function lookUpListing(resolver: BlocklistResolver, name: string, timeoutMs: number): Promise<BlocklistLookup> {
  let answer: BlocklistAnswer;
  try {
    answer = classifyRecords(await withTimeout(resolver.resolve4(name), timeoutMs));
  } catch (err) {
    answer = classifyFailure(codeOf(err));
  }
  if (answer.kind !== 'listed') return answer;
  // The reason is a courtesy of the list: a listing stands without it.
  try {
    const records = await withTimeout(resolver.resolveTxt(name), timeoutMs);
    const text = records.map((chunks) => chunks.join('')).filter((record) => record !== '');
    return { ...answer, reason: text.length ? readableBounded(text.join(' / '), REASON_MAX) : null };
  } catch {
    return { ...answer, reason: null };
  }
}

class LookupTimeout extends Error {
  readonly code = 'ETIMEOUT';
}

function withTimeout<T>(query: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new LookupTimeout(`no answer within ${ms} ms`)), ms)));
  return Promise.race([query, limit]).finally(() => clearTimeout(timer));
}

/** A node:dns error's code (ETIMEOUT, ESERVFAIL, ENOTFOUND, ...). */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
