import { TenantDirectory } from './access/tenants.ts';
import type { Clock } from './clock.ts';
import type { EngineSettings } from './engine/delivery-engine.ts';
import { isDeepStrictEqual } from 'node:util';
import { createRouter, type Resolver as DnsResolver, type Router } from './engine/routing.ts';
import type { PoolSetup } from './ippool/pool-setup.ts';
import { poolAssignerFor } from './ippool/pool-assignment.ts';
import { createPoolPolicy } from './ippool/pool-policy.ts';
import { ReactionEngine } from './ippool/reaction-rules.ts';
import type { Logger } from './observability/logger.ts';
import type { ResolvedConfig } from './resolved-config.ts';
import type { DkimKeyStore } from './sender-domains/key-store.ts';
import { createSenderDomains, type SenderDomains } from './sender-domains/sender-domains-view.ts';
import { createDkimSigner, type DkimSigner, type UnsignedReason } from './sender-domains/signer.ts';
import type { SigningPool } from './sender-domains/signing-pool.ts';
import { createUnsubscribeLinks, type UnsubscribeLinks } from './sender-domains/unsubscribe-links.ts';
import { returnPathFor } from './sender-domains/verp.ts';

/**
 * What the daemon makes from one configuration and replaces whole when it is reloaded: the
 * components that hold these read them per use (through the composition root's current parts)
 * or take them in one call (EgressPool.reconfigure). A config section that needs an object made
 * from it adds one field here; one that is read as it is needs nothing (LiveConfig.current).
 */
export interface ConfigParts {
  /** The egress pool's members, policy (plans, providers, shaping, reputation floor) and reaction rules. */
  pool: PoolSetup;
  router: Router;
  assignPool: ReturnType<typeof poolAssignerFor>;
  signer: DkimSigner;
  senderDomains: SenderDomains;
  engine: EngineSettings;
  tenants: TenantDirectory;
  /** The List-Unsubscribe fields of accepted mail, and reading their links back. */
  unsubscribe: UnsubscribeLinks;
}

export interface ConfigPartsDeps {
  dns: DnsResolver;
  clock: Clock;
  logger: Logger;
  dkimKeys: DkimKeyStore;
  signingPool: SigningPool | undefined;
  onUnsigned: (reason: UnsignedReason) => void;
}

/**
 * The parts of `resolved`. With the parts of the running configuration (`previous`, made from
 * `previous.resolved`) and what a reload changes, a part whose settings did not change is kept
 * with what it has learned: the router its cache of MX lookups, the reaction rules their counts
 * of recent replies (kept while the rules, config's and config/reaction-rules.yaml's alike, are
 * the same).
 */
export function makeConfigParts(
  resolved: ResolvedConfig,
  deps: ConfigPartsDeps,
  previous?: { parts: ConfigParts; resolved: ResolvedConfig; changed: (path: string) => boolean },
): ConfigParts {
  const { config } = resolved;
  const keep = (paths: string[]) => (previous && !paths.some(previous.changed) ? previous.parts : null);
  const sameRules = previous && isDeepStrictEqual(previous.resolved.reactionRules, resolved.reactionRules);
  return {
    pool: {
      members: config.ips.map((ip) => ({ address: ip.address, hostname: ip.hostname ?? config.hostname, pool: ip.pool, weight: ip.weight, warmup: ip.warmup ?? null })),
      policy: createPoolPolicy(resolved.pool, config.reputation),
      reactions: sameRules ? previous.parts.pool.reactions : new ReactionEngine(resolved.reactionRules),
    },
    router: keep(['delivery.routes', 'delivery.mxPort'])?.router ?? createRouter({ routes: config.delivery.routes, mxPort: config.delivery.mxPort, resolver: deps.dns, clock: deps.clock }),
    assignPool: poolAssignerFor(config),
    tenants: new TenantDirectory(config.tenants),
    unsubscribe: createUnsubscribeLinks(config),
    signer: createDkimSigner({ keys: deps.dkimKeys, config: config.dkim, clock: deps.clock, logger: deps.logger, pool: deps.signingPool, onUnsigned: deps.onUnsigned }),
    senderDomains: createSenderDomains({ dkim: config.dkim, returnPath: config.returnPath, keys: deps.dkimKeys }),
    engine: {
      delivery: config.delivery,
      returnPath: ({ sender, messageId, recipientId }) => returnPathFor({ sender, messageId, recipientId, config: config.returnPath }),
    },
  };
}
