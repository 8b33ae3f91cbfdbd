import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock } from '../../../clock.ts';
import { SUPPRESSION_REASONS, type NewSuppression, type SuppressionFilters, type SuppressionReason } from '../../../storage/suppressions.ts';
import { mediaTypeOf, pathOf, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { readPageQuery } from '../page-query.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, problemResponses, v1Route } from '../schemas.ts';
import { csvHeader, exportLine, FILE_TYPES, parseImport, type FileFormat } from '../suppression-files.ts';
import { readEntry, tenantOf } from '../suppression-input.ts';
import { IMPORT_RESULT, TENANT_QUERY } from './suppression-schemas.ts';
import { refuse, type SuppressionRouteDeps } from './suppressions.ts';

/** The largest import: 100,000 lines are some 5 MB; a million fit. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024;
const MAX_IMPORT_LINES = 1_000_000;
/** Problems listed in a refused import; the detail counts them all. */
const MAX_LISTED_PROBLEMS = 100;
/** Entries read per page while exporting. */
const EXPORT_PAGE = 1000;

const IMPORT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { ...TENANT_QUERY, description: `${TENANT_QUERY.description} For lines that name none; absent: mail of no tenant (a tenant's token: its own).` },
    reason: { type: 'string', enum: [...SUPPRESSION_REASONS], default: 'manual', description: 'For lines that give none.' },
  },
} as const;

const EXPORT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    format: { type: 'string', enum: ['csv', 'ndjson'], default: 'csv' },
    tenant: { ...TENANT_QUERY, description: `${TENANT_QUERY.description} Absent: every tenant's (a tenant's token: its own).` },
    reason: { type: 'string', enum: [...SUPPRESSION_REASONS] },
    since: { type: 'string', format: 'date-time', description: 'Created at or after (RFC 3339).' },
    until: { type: 'string', format: 'date-time', description: 'Created before (RFC 3339).' },
  },
} as const;

type ImportRequest = FastifyRequest<{ Querystring: { tenant?: string; reason: SuppressionReason }; Body: string }>;
type ExportRequest = FastifyRequest<{ Querystring: { format: FileFormat; tenant?: string; reason?: SuppressionReason; since?: string; until?: string } }>;

/**
 * POST /v1/suppressions/import and GET /v1/suppressions/export: the list in bulk, as CSV (header
 * `address,reason,expires_at`, and optionally `created_at`, `tenant`) or NDJSON. An import is
 * checked whole first: one bad line refuses it (400, every bad line by number) and nothing is
 * stored; a good one is written in chunks of a few thousand entries. An export is written as it
 * is read, a page at a time, never held whole in memory.
 */
export function registerSuppressionTransferRoutes(app: FastifyInstance, deps: SuppressionRouteDeps): void {
  const clock = deps.clock ?? systemClock;

  // Its own scope: the text parsers serve the import only, not the other /v1 routes.
  app.register(async (scope) => {
    scope.addContentTypeParser([FILE_TYPES.csv, FILE_TYPES.ndjson], { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_request, body, done) => done(null, body));
    scope.post('/v1/suppressions/import', {
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        ...v1Route({ summary: 'Import addresses into the suppression list (CSV or NDJSON)', roles: rolesFor('POST', '/v1/suppressions/import') ?? [], tags: ['suppressions'] }),
        querystring: IMPORT_QUERY,
        body: {
          content: {
            [FILE_TYPES.csv]: { schema: { type: 'string', description: 'A header line (address,reason,expires_at; also created_at, tenant), then one entry a line.' } },
            [FILE_TYPES.ndjson]: { schema: { type: 'string', description: 'One JSON object a line: address, reason, expiresAt or expiresIn, createdAt, tenant.' } },
          },
        },
        response: { 200: jsonResponse('Every line stored.', IMPORT_RESULT), ...problemResponses(...AUTH_PROBLEMS, 413, 415) },
      },
      handler: async (request: ImportRequest, reply: FastifyReply) => {
        const type = mediaTypeOf(request);
        const format = (Object.keys(FILE_TYPES) as FileFormat[]).find((f) => FILE_TYPES[f] === type);
        // Fastify's own parsers take text/plain and JSON too; only the two file types are imports.
        if (format === undefined || typeof request.body !== 'string') {
          return sendProblem(reply, problem('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${JSON.stringify(type)}: send ${FILE_TYPES.csv} or ${FILE_TYPES.ndjson}`, { instance: pathOf(request) }));
        }
        const principal = request.principal!;
        const whose = tenantOf(principal, request.query.tenant, { path: 'querystring.tenant', otherwise: '', tenants: deps.tenants });
        if ('problem' in whose) return refuse(request, reply, whose.problem);
        const parsed = parseImport(format, request.body);
        if ('problem' in parsed) return refuseLines(request, reply, [parsed.problem]);
        if (parsed.lines.length > MAX_IMPORT_LINES) return refuseLines(request, reply, [{ line: MAX_IMPORT_LINES + 1, message: `more than ${MAX_IMPORT_LINES} entries in one import` }]);
        const now = clock.now();
        const source = { kind: 'api' as const, actor: principal.name, import: true };
        const problems = [...parsed.problems];
        const entries: NewSuppression[] = [];
        for (const { line, fields, tenant } of parsed.lines) {
          let lineTenant = whose.tenant;
          if (tenant !== undefined) {
            const named = tenantOf(principal, tenant, { path: 'tenant', otherwise: '', tenants: deps.tenants });
            if ('problem' in named) {
              problems.push({ line, message: `tenant: ${named.problem.message}` });
              continue;
            }
            lineTenant = named.tenant;
          }
          const read = readEntry(fields, { tenant: lineTenant, now, source, defaultReason: request.query.reason, at: 'line' });
          if ('problem' in read) problems.push({ line, message: `${read.problem.path.slice('line.'.length)}: ${read.problem.message}` });
          else entries.push(read.entry);
        }
        if (problems.length > 0) return refuseLines(request, reply, problems);
        const written = await deps.store.addSuppressions(entries);
        const byReason = new Map<SuppressionReason, number>();
        for (const e of entries) byReason.set(e.reason, (byReason.get(e.reason) ?? 0) + 1);
        for (const [reason, n] of byReason) deps.metrics.suppressionsAdded.inc({ reason, source: 'api' }, n);
        auditRequest(request, { target: `import of ${entries.length} entries (${format})`, change: { after: { lines: entries.length, written } } });
        return { lines: entries.length, written };
      },
    });
  });

  app.get('/v1/suppressions/export', {
    schema: {
      ...v1Route({ summary: 'Export the suppression list (CSV or NDJSON), streamed', roles: rolesFor('GET', '/v1/suppressions/export') ?? [], tags: ['suppressions'] }),
      querystring: EXPORT_QUERY,
      response: {
        200: {
          description: 'Every entry in force (erased ones, without an address, are left out), by tenant, newest first; written as it is read.',
          content: { [FILE_TYPES.csv]: { schema: { type: 'string' } }, [FILE_TYPES.ndjson]: { schema: { type: 'string' } } },
        },
        ...problemResponses(...AUTH_PROBLEMS),
      },
    },
    handler: async (request: ExportRequest, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, () => null);
      if ('path' in page) return refuse(request, reply, page);
      const whose = tenantOf(request.principal!, q.tenant, { path: 'querystring.tenant', otherwise: null });
      if ('problem' in whose) return refuse(request, reply, whose.problem);
      const filters: SuppressionFilters = { tenant: whose.tenant, reason: q.reason ?? null, address: null, since: page.since, until: page.until, now: clock.now() };
      const stream = Readable.from(exportLines(deps, q.format, filters));
      stream.on('error', (err) => request.log.error({ event: 'api.suppressions.export.failed', err }, 'the export stopped: the suppression list could not be read'));
      return reply
        .type(`${FILE_TYPES[q.format]}; charset=utf-8`)
        .header('content-disposition', `attachment; filename="suppressions.${q.format}"`)
        .send(stream);
    },
  });
}

/** The export's text, a page of the store at a time. */
async function* exportLines(deps: SuppressionRouteDeps, format: FileFormat, filters: SuppressionFilters): AsyncGenerator<string> {
  if (format === 'csv') yield csvHeader();
  let after = null;
  for (;;) {
    const page = await deps.store.listSuppressions(filters, after, EXPORT_PAGE);
    if (page.length > 0) yield page.map((e) => exportLine(format, e)).join('');
    if (page.length < EXPORT_PAGE) return;
    after = page.at(-1)!;
  }
}

/** A refused import: every bad line by number (the first MAX_LISTED_PROBLEMS), nothing stored. */
function refuseLines(request: FastifyRequest, reply: FastifyReply, problems: ReadonlyArray<{ line: number; message: string }>): FastifyReply {
  const sorted = [...problems].sort((a, b) => a.line - b.line);
  const errors = sorted.slice(0, MAX_LISTED_PROBLEMS).map((p) => ({ path: `body line ${p.line}`, message: p.message }));
  const detail = `${sorted.length} line${sorted.length === 1 ? '' : 's'} cannot be imported (first: line ${sorted[0]!.line}: ${sorted[0]!.message}); nothing was stored`;
  return sendProblem(reply, problem('INVALID_REQUEST', detail, { errors, instance: pathOf(request) }));
}
