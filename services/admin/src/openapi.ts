import { LISTS_OPENAPI_PATHS } from './lists-api.js';
import { SPAM_LEARN_OPENAPI_PATHS } from './spam-learn-api.js';

/** OpenAPI 3 description of the admin API (served at /openapi.json). Kept beside the routes in api.ts. */
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const errors = {
  '400': ok('Bad request: { error, message }'),
  '401': ok('Missing or invalid token'),
  '403': ok('Read-only token used for a change, or for reading message content (preview, download)'),
  '404': ok('Not found'),
};

export const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'mailgate admin API', version: '1' },
  components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  security: [{ bearer: [] }],
  paths: {
    '/api/v1/messages': {
      get: {
        summary: 'Search tracked messages (newest first)',
        parameters: [
          'rcpt',
          'from',
          'ip',
          'messageId',
          'subject',
          'status',
          'auth',
          'since',
          'until',
          'limit',
          'cursor',
        ].map((name) => ({
          name,
          in: 'query',
          schema: { type: 'string' },
        })),
        responses: {
          '200': ok('{ results: MessageSummary[], nextCursor?: string } (pass nextCursor as cursor for the next page)'),
          ...errors,
        },
      },
    },
    '/api/v1/messages/{id}': {
      get: {
        summary: "One message's timeline, verdicts, trace id and spam-check decision",
        parameters: [idParam],
        responses: {
          '200': ok(
            '{ summary, events, traceUrl, spam?: { result, score, scl, symbols: [{ name, score }], thresholds, dryRun, wouldBe, reason, at, checks } }',
          ),
          ...errors,
        },
      },
    },
    '/api/v1/quarantine': {
      get: { summary: 'List quarantined messages', responses: { '200': ok('{ results }'), ...errors } },
    },
    '/api/v1/quarantine/{id}': {
      get: {
        summary: 'A quarantined message (envelope, reason, stage)',
        parameters: [idParam],
        responses: { '200': ok('QuarantineEntry'), ...errors },
      },
      delete: {
        summary: 'Delete a quarantined message',
        parameters: [idParam],
        responses: { '200': ok('{ deleted }'), ...errors },
      },
    },
    '/api/v1/quarantine/{id}/preview': {
      get: {
        summary:
          'Preview a quarantined message (admin role; audited as quarantine.preview): header fields, text parts as ' +
          'text (HTML source is never rendered), attachment list',
        parameters: [idParam],
        responses: {
          '200': ok(
            '{ id, reason, stage, headers: [{ name, value }], texts: [{ part, contentType, text, truncated }], ' +
              'attachments: [{ part, name, contentType, size }], problems: string[] }',
          ),
          ...errors,
        },
      },
    },
    '/api/v1/quarantine/{id}/raw': {
      get: {
        summary: 'Download the message as .eml (message/rfc822; admin role; audited as quarantine.download)',
        parameters: [idParam],
        responses: { '200': { description: 'the message' }, ...errors },
      },
    },
    '/api/v1/quarantine/{id}/release': {
      post: {
        summary: 'Release into the pipeline: recheck=true re-runs the quarantining check; false releases after it',
        parameters: [idParam],
        requestBody: {
          content: { 'application/json': { schema: { type: 'object', properties: { recheck: { type: 'boolean' } } } } },
        },
        responses: { '200': ok('{ released }'), ...errors },
      },
    },
    '/api/v1/deferred': {
      get: {
        summary: 'Deferred deliveries with next attempt and last error',
        responses: { '200': ok('{ results }'), ...errors },
      },
    },
    '/api/v1/deferred/{id}/retry': {
      post: { summary: 'Retry now', parameters: [idParam], responses: { '200': ok('{ ok }'), ...errors } },
    },
    '/api/v1/deferred/{id}/hold': {
      post: {
        summary: 'Hold (no more attempts until released)',
        parameters: [idParam],
        responses: { '200': ok('{ ok }'), ...errors },
      },
    },
    '/api/v1/deferred/{id}/release': {
      post: { summary: 'Release a held message', parameters: [idParam], responses: { '200': ok('{ ok }'), ...errors } },
    },
    '/api/v1/deferred/{id}': {
      delete: {
        summary: 'Delete a deferred message (dsn=true sends a bounce to the sender)',
        parameters: [idParam, { name: 'dsn', in: 'query', schema: { type: 'boolean' } }],
        responses: { '200': ok('{ deleted }'), ...errors },
      },
    },
    ...LISTS_OPENAPI_PATHS,
    ...SPAM_LEARN_OPENAPI_PATHS,
    '/api/v1/dev/mailbox': {
      get: {
        summary:
          'Dev mailbox (only with admin.devMailboxDir, set by `mailgate dev`; admin role): messages the dev SMTP sink ' +
          'accepted, newest first',
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }],
        responses: {
          '200': ok('{ dir, results: [{ id, file, size, savedAt, from, to, subject, deliveredTo }] }'),
          ...errors,
        },
      },
    },
    '/api/v1/dev/mailbox/{id}': {
      get: {
        summary: 'One message of the dev mailbox: header fields, text parts as text, attachment list',
        parameters: [idParam],
        responses: { '200': ok('{ id, size, headers, texts, attachments, problems }'), ...errors },
      },
    },
    '/api/v1/dev/mailbox/{id}/raw': {
      get: {
        summary: 'One message of the dev mailbox as .eml (message/rfc822)',
        parameters: [idParam],
        responses: { '200': { description: 'the message' }, ...errors },
      },
    },
    '/api/v1/audit': {
      get: { summary: 'Audit log of admin actions (newest first)', responses: { '200': ok('{ results }'), ...errors } },
    },
    '/api/v1/stats/history': {
      get: {
        summary:
          'The console dashboard series: accepted messages and SMTP-time refusals per time bucket (tracking store), ' +
          'total consumer lag sampled by the admin',
        parameters: [{ name: 'hours', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 48 } }],
        responses: {
          '200': ok('{ hours, bucketMinutes, t: seconds[], accepted[], refused[], lag: (number|null)[] }'),
          ...errors,
        },
      },
    },
    '/api/v1/stats': {
      get: {
        summary: 'Per-stage throughput and consumer lag',
        responses: { '200': ok('{ stages, quarantined }'), ...errors },
      },
    },
  },
} as const;
