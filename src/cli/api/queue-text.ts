import { age, plural, table, utc } from './text-table.ts';

/** GET /v1/queue as `rookery queue` prints it: the counts, then the deferred backlog by domain, pool and egress IP. */

interface Oldest {
  oldestCreatedAt: string | null;
  oldestAgeSeconds: number | null;
}

interface Group extends Oldest {
  key: string | null;
  count: number;
}

interface Grouping {
  groups: Group[];
  rest: { groups: number; count: number };
}

export interface QueueJson {
  counts: Record<string, number>;
  deferred: Oldest & { count: number; byDomain: Grouping; byPool: Grouping; byEgressIp: Grouping };
}

export function queueText(queue: QueueJson): string {
  const counts = Object.entries(queue.counts).map(([state, n]) => `${n} ${state}`).join(', ');
  const { deferred } = queue;
  const lines = [`Recipients: ${counts}`, ''];
  if (deferred.count === 0) return `${[...lines, 'Deferred: none'].join('\n')}\n`;
  lines.push(`Deferred: ${plural(deferred.count, 'recipient')}, oldest accepted ${utc(deferred.oldestCreatedAt)} (${age(deferred.oldestAgeSeconds)} ago)`);
  const groupings: Array<[string, Grouping, string]> = [
    ['DOMAIN', deferred.byDomain, '-'],
    ['POOL', deferred.byPool, '-'],
    // No egress IP: never connected (DNS failed, or every IP was unavailable).
    ['EGRESS IP', deferred.byEgressIp, '(none)'],
  ];
  for (const [title, grouping, none] of groupings) {
    lines.push('');
    lines.push(
      table(
        [
          { title, value: (g: Group) => g.key ?? none },
          { title: 'DEFERRED', value: (g) => String(g.count), right: true },
          { title: 'OLDEST', value: (g) => utc(g.oldestCreatedAt) },
          { title: 'AGE', value: (g) => age(g.oldestAgeSeconds) },
        ],
        grouping.groups,
      ).trimEnd(),
    );
    if (grouping.rest.groups > 0) lines.push(`(${plural(grouping.rest.groups, 'more group')}: ${plural(grouping.rest.count, 'recipient')})`);
  }
  return `${lines.join('\n')}\n`;
}
