import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Clock } from '../clock.ts';
import { formatPath } from '../config/config-error.ts';
import type { DkimConfig } from '../config/dkim-schema.ts';
import type { Logger } from '../observability/logger.ts';
import { dkimPublicKeyData, publicKeyMatches } from './dns-record.ts';

/**
 * The DKIM private keys: read with the configuration (readDkimKeys), reread when their files
 * change, replaced with a reloaded configuration's (stage()), and for each domain the keys that
 * sign now.
 *
 * Rotation: when a domain lists several keys of one algorithm, the newest (last listed) whose
 * DNS record `<selector>._domainkey.<domain>` is seen published with the matching p= signs, so
 * a new selector takes over only once receivers can verify it; until then (or if none is seen)
 * the oldest keeps signing. A single key of an algorithm signs regardless of DNS: listing it is
 * the operator's intent, and `rookery domains check` reports a missing record.
 */

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKey {
  /** Lower-case A-label, the d= of the signature. */
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  /**
   * Parsed once and reused: OpenSSL keeps per-key precomputation (RSA Montgomery and blinding
   * values) in it, so signing with a key parsed anew each time costs several times more.
   */
  privateKey: KeyObject;
  /** The p= value of the DNS record: SPKI (RSA) or the raw public key (Ed25519, RFC 8463), base64. */
  publicKey: string;
  /** RSA modulus length; null for Ed25519. */
  bits: number | null;
}

/** The DNS query the key store needs; `node:dns/promises` Resolver satisfies it. */
export interface TxtResolver {
  resolveTxt(name: string): Promise<string[][]>;
}

export interface DkimKeyStatus {
  domain: string;
  selector: string;
  /** The file as configured. */
  privateKey: string;
  algorithm: DkimAlgorithm;
  bits: number | null;
  /** When the key in use was read from its file. */
  loadedAt: number;
  /** Whether DNS was seen to publish this key; null when not looked up (single keys, or not yet). */
  published: boolean | null;
  /** Whether this key signs now. */
  signing: boolean;
  /** Why the file could not be reloaded (the previous key stays in use); null when fine. */
  error: string | null;
}

export interface DkimKeyStore {
  /** The keys that sign mail for this configured domain now, one per algorithm; [] for others. */
  keysFor(domain: string): readonly DkimKey[];
  /** Every configured key with its state, for the control API and logs. */
  status(): DkimKeyStatus[];
  /**
   * Readies the keys of a reloaded configuration, read by readDkimKeys: each key already in use
   * keeps what DNS said of it, and a new key in a rotation is looked up now, so it signs from the
   * first message only if its record is published. Returns the commit that swaps them in.
   */
  stage(keys: readonly ConfiguredDkimKey[]): Promise<() => void>;
  /** Rereads the key files that changed since the last look (what the file timer runs). */
  checkFiles(): Promise<void>;
  /** Looks up the DNS records of keys in rotation (what the DNS timer runs). */
  checkDns(): Promise<void>;
  /** Looks DNS up once, then starts the file and DNS timers. Safe to call twice. */
  start(): Promise<void>;
  /** Stops the timers and waits for a check in progress. Safe to call twice. */
  stop(): Promise<void>;
}

/** A configured key as read from its file, before the store takes it over. */
export interface ConfiguredDkimKey {
  domain: string;
  selector: string;
  /** The file as configured. */
  file: string;
  /** Config path of the file, for messages: dkim.domains.example.com.keys[0].privateKey */
  where: string;
  key: DkimKey;
  /** Identity of the file when it was read (device, inode, size, times); a change means reread. */
  stamp: string;
}

export interface DkimKeyStoreOptions {
  /** Every configured key, read by readDkimKeys. */
  keys: readonly ConfiguredDkimKey[];
  resolver: TxtResolver;
  clock: Clock;
  logger: Logger;
  /** How often key files are looked at for changes (default 5 s). */
  fileCheckIntervalMs?: number;
  /** How often the DNS records of keys in rotation are looked up (default 10 min). */
  dnsCheckIntervalMs?: number;
}

const MIN_RSA_BITS = 1024;
const RECOMMENDED_RSA_BITS = 2048;

/** One configured key: its file, the key read from it last, and what DNS says about it. */
interface Slot extends ConfiguredDkimKey {
  loadedAt: number;
  published: boolean | null;
  error: string | null;
}

/**
 * Every configured key, read and parsed now; `problems` names the config path of each key file
 * that is unreadable, unparseable or too weak, so the daemon (and `rookery check-config`)
 * refuses to start with it. Reads files and nothing else.
 */
export function readDkimKeys(config: DkimConfig): { keys: ConfiguredDkimKey[]; problems: string[] } {
  const keys: ConfiguredDkimKey[] = [];
  const problems: string[] = [];
  for (const [domain, entry] of Object.entries(config.domains)) {
    entry.keys.forEach((k, i) => {
      const where = formatPath(['dkim', 'domains', domain, 'keys', i, 'privateKey']);
      let pem: Buffer;
      let stamp: string;
      try {
        stamp = stampOf(statSync(k.privateKey));
        pem = readFileSync(k.privateKey);
      } catch (err) {
        problems.push(`${where}: cannot read file: ${(err as Error).message}`);
        return;
      }
      const key = parseKey(pem, domain, k.selector);
      if (typeof key === 'string') problems.push(`${where}: ${key}`);
      else keys.push({ domain, selector: k.selector, file: k.privateKey, where, key, stamp });
    });
  }
  return { keys, problems };
}

/** Takes over the keys read with the configuration; looks nothing up until start(). */
export function createDkimKeyStore(options: DkimKeyStoreOptions): DkimKeyStore {
  const { resolver, clock } = options;
  const log = options.logger.child({ component: 'dkim' });
  const fileCheckIntervalMs = options.fileCheckIntervalMs ?? 5_000;
  const dnsCheckIntervalMs = options.dnsCheckIntervalMs ?? 600_000;

  let slots = slotsOf(options.keys, [], clock.now());
  for (const slot of slots) warnIfWeak(log, slot.key, slot.where);
  /** Per domain, the slots of each algorithm in config order (rebuilt when a reload changes an algorithm). */
  let groups = groupSlots(slots);
  let signing = chooseSigning(groups);

  let fileTimer: NodeJS.Timeout | null = null;
  let dnsTimer: NodeJS.Timeout | null = null;
  let started = false;
  let fileCheck: Promise<void> | null = null;
  let dnsCheck: Promise<void> | null = null;

  function refresh(): void {
    const before = signing;
    groups = groupSlots(slots);
    signing = chooseSigning(groups);
    for (const [domain, keys] of signing) {
      const old = before.get(domain) ?? [];
      for (const key of keys) {
        const replaced = old.find((k) => k.algorithm === key.algorithm);
        if (replaced && replaced.selector !== key.selector) {
          log.info(
            { event: 'dkim.key.changed', domain, algorithm: key.algorithm, from: replaced.selector, to: key.selector },
            'DKIM signing key changed',
          );
        }
      }
    }
  }

  /**
   * Rereads one slot's file when it changed. Keeps the old key, and logs once per state of the
   * file, when the file is bad. Returns the problem, if any, and whether a different key is now
   * in use.
   */
  async function reloadSlot(slot: Slot): Promise<{ problem: string | null; changed: boolean }> {
    let stats: Stats;
    try {
      stats = await stat(slot.file);
    } catch (err) {
      return failSlot(slot, 'missing', `cannot read file: ${(err as Error).message}`);
    }
    const stamp = stampOf(stats);
    if (stamp === slot.stamp) return { problem: slot.error, changed: false };
    let pem: Buffer;
    try {
      pem = await readFile(slot.file);
    } catch (err) {
      return failSlot(slot, stamp, `cannot read file: ${(err as Error).message}`);
    }
    const parsed = parseKey(pem, slot.domain, slot.selector);
    if (typeof parsed === 'string') return failSlot(slot, stamp, parsed);
    slot.stamp = stamp;
    slot.error = null;
    if (parsed.privateKey.equals(slot.key.privateKey)) return { problem: null, changed: false };
    slot.key = parsed;
    slot.loadedAt = clock.now();
    // What DNS said was about the previous key.
    slot.published = null;
    warnIfWeak(log, parsed, slot.where);
    log.info(
      { event: 'dkim.key.reloaded', domain: slot.domain, selector: slot.selector, algorithm: parsed.algorithm, file: slot.file },
      'DKIM key reloaded',
    );
    return { problem: null, changed: true };
  }

  function failSlot(slot: Slot, stamp: string, problem: string): { problem: string; changed: false } {
    const message = `${slot.where}: ${problem}`;
    if (slot.stamp !== stamp || slot.error !== message) {
      log.error(
        { event: 'dkim.reload.failed', domain: slot.domain, selector: slot.selector, file: slot.file, error: problem },
        'DKIM key file could not be reloaded; the key loaded before stays in use',
      );
    }
    slot.stamp = stamp;
    slot.error = message;
    return { problem: message, changed: false };
  }

  async function rereadFiles(): Promise<void> {
    const checked = slots;
    const results = await Promise.all(checked.map((slot) => reloadSlot(slot)));
    refresh();
    // A new key in rotation signs only once DNS is seen to publish it.
    if (started && results.some((r, i) => r.changed && inRotation(checked[i]!))) void checkDns();
  }

  function inRotation(slot: Slot, of = groups): boolean {
    return (of.get(slot.domain)?.get(slot.key.algorithm)?.length ?? 0) > 1;
  }

  function startDnsTimer(): void {
    if (started && !dnsTimer && slots.some((slot) => inRotation(slot))) dnsTimer = setInterval(() => void checkDns(), dnsCheckIntervalMs).unref();
  }

  async function lookUp(slot: Slot): Promise<void> {
    const name = `${slot.selector}._domainkey.${slot.domain}`;
    let records: string[][];
    try {
      records = await resolver.resolveTxt(name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') {
        records = [];
      } else {
        // A failed lookup says nothing about the record: keep what was seen before.
        log.warn({ event: 'dkim.lookup.failed', name, code, error: (err as Error).message }, 'DKIM record lookup failed');
        return;
      }
    }
    const published = records.some((chunks) => publicKeyMatches(chunks.join(''), slot.key.privateKey));
    if (published !== slot.published) {
      log.info({ event: 'dkim.record.checked', name, published }, published ? 'DKIM record published' : 'DKIM record not published with this key');
    }
    slot.published = published;
  }

  function checkDns(): Promise<void> {
    // One lookup round at a time; a caller during a round waits for that round.
    dnsCheck ??= (async () => {
      try {
        await Promise.all(slots.filter((slot) => inRotation(slot)).map(lookUp));
        refresh();
      } finally {
        dnsCheck = null;
      }
    })();
    return dnsCheck;
  }

  function checkFiles(): Promise<void> {
    fileCheck ??= (async () => {
      try {
        await rereadFiles();
      } finally {
        fileCheck = null;
      }
    })();
    return fileCheck;
  }

  return {
    keysFor: (domain) => signing.get(domain) ?? [],

    status: () =>
      slots.map((slot) => ({
        domain: slot.domain,
        selector: slot.selector,
        privateKey: slot.file,
        algorithm: slot.key.algorithm,
        bits: slot.key.bits,
        loadedAt: slot.loadedAt,
        published: slot.published,
        signing: (signing.get(slot.domain) ?? []).includes(slot.key),
        error: slot.error,
      })),

    async stage(keys) {
      const staged = slotsOf(keys, slots, clock.now());
      const stagedGroups = groupSlots(staged);
      await Promise.all(staged.filter((slot) => slot.published === null && inRotation(slot, stagedGroups)).map(lookUp));
      return () => {
        for (const slot of staged) if (!slots.some((s) => s.key === slot.key)) warnIfWeak(log, slot.key, slot.where);
        slots = staged;
        refresh();
        startDnsTimer();
      };
    },

    checkFiles,
    checkDns,

    async start() {
      if (started) return;
      started = true;
      await checkDns();
      if (!started) return;
      // unref: the timers must not keep the process alive on their own.
      fileTimer = setInterval(() => void checkFiles(), fileCheckIntervalMs).unref();
      startDnsTimer();
    },

    async stop() {
      started = false;
      if (fileTimer) clearInterval(fileTimer);
      if (dnsTimer) clearInterval(dnsTimer);
      fileTimer = dnsTimer = null;
      await Promise.all([fileCheck, dnsCheck]);
    },
  };
}

/**
 * Slots for configured keys. A key the store already holds (same domain, selector and key)
 * keeps its slot's state: when it was loaded and what DNS said of it.
 */
function slotsOf(keys: readonly ConfiguredDkimKey[], held: readonly Slot[], now: number): Slot[] {
  return keys.map((file) => {
    const same = held.find((slot) => slot.domain === file.domain && slot.selector === file.selector && slot.key.privateKey.equals(file.key.privateKey));
    return same ? { ...file, key: same.key, loadedAt: same.loadedAt, published: same.published, error: null } : { ...file, loadedAt: now, published: null, error: null };
  });
}

/** The key in a PEM file, or why it cannot sign. */
function parseKey(pem: Buffer, domain: string, selector: string): DkimKey | string {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    return `not a PEM private key (or it is encrypted): ${(err as Error).message}`;
  }
  const publicKey = createPublicKey(privateKey);
  if (privateKey.asymmetricKeyType === 'rsa') {
    const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    // RFC 8301 3.2: verifiers must not accept signatures made with shorter keys.
    if (bits < MIN_RSA_BITS) return `RSA key of ${bits} bits is too short (at least ${MIN_RSA_BITS}; use ${RECOMMENDED_RSA_BITS})`;
    return { domain, selector, algorithm: 'rsa-sha256', privateKey, publicKey: dkimPublicKeyData(publicKey).p, bits };
  }
  if (privateKey.asymmetricKeyType === 'ed25519') {
    return { domain, selector, algorithm: 'ed25519-sha256', privateKey, publicKey: dkimPublicKeyData(publicKey).p, bits: null };
  }
  return `unsupported key type ${privateKey.asymmetricKeyType} (DKIM signs with RSA or Ed25519)`;
}

function warnIfWeak(log: Logger, key: DkimKey, where: string): void {
  if (key.bits !== null && key.bits < RECOMMENDED_RSA_BITS) {
    log.warn(
      { event: 'dkim.key.weak', domain: key.domain, selector: key.selector, bits: key.bits, where },
      `RSA key shorter than ${RECOMMENDED_RSA_BITS} bits; some receivers treat its signatures as weak`,
    );
  }
}

function stampOf(stats: Stats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

function groupSlots(slots: readonly Slot[]): Map<string, Map<DkimAlgorithm, Slot[]>> {
  const groups = new Map<string, Map<DkimAlgorithm, Slot[]>>();
  for (const slot of slots) {
    let byAlgorithm = groups.get(slot.domain);
    if (!byAlgorithm) groups.set(slot.domain, (byAlgorithm = new Map()));
    const group = byAlgorithm.get(slot.key.algorithm);
    if (group) group.push(slot);
    else byAlgorithm.set(slot.key.algorithm, [slot]);
  }
  return groups;
}

/** Per domain, one key per algorithm: the newest published in a rotation, else the oldest. */
function chooseSigning(groups: Map<string, Map<DkimAlgorithm, Slot[]>>): Map<string, DkimKey[]> {
  const signing = new Map<string, DkimKey[]>();
  for (const [domain, byAlgorithm] of groups) {
    const keys: DkimKey[] = [];
    for (const group of byAlgorithm.values()) {
      const newestPublished = group.findLast((slot) => slot.published === true);
      keys.push((group.length === 1 ? group[0]! : (newestPublished ?? group[0]!)).key);
    }
    signing.set(domain, keys);
  }
  return signing;
}
