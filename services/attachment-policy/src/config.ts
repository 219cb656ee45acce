import { busSchema, httpSchema } from '@mailgate/runtime';
import { z } from 'zod';

/**
 * The `attachmentPolicy` config section. Every option has a default; the defaults are the safe configuration the
 * product promises: an allow-list of common document/image types, judged by true type, everything else rejected
 * (quarantined with the rule recorded). See docs/attachment-policy.md and deploy/attachment-policy.example.yaml.
 */

/** What happens to a file a rule matched. Ordered by severity (reject wins over strip over silent-delete). */
export const ACTIONS = ['allow', 'silent-delete', 'strip', 'reject'] as const;
export type Action = (typeof ACTIONS)[number];
const action = z.enum(ACTIONS);

const list = z.array(z.string().min(1)).min(1);

export const matchSchema = z
  .object({
    /**
     * True type from magic bytes: file-type extensions (`exe`, `pdf`, `zip`) or MIME types (`image/*` allowed),
     * plus `text` (no magic, looks like text), `unknown` (no magic, binary) and `empty` (zero bytes).
     */
    trueType: list.optional(),
    /** Final file-name extension, case-insensitive, after trailing dots/spaces are removed (`invoice.exe. ` → exe). */
    extension: list.optional(),
    /** Declared Content-Type of the MIME part (`image/*` allowed). Never matches files inside archives. */
    declaredType: list.optional(),
    /** `true`: the name has a decoy extension before the real one (`invoice.pdf.exe`); see docs for the exact test. */
    doubleExtension: z.boolean().optional(),
    /** `true`: the declared type or the extension claims a detectable type the content is not (exe named .pdf). */
    mismatch: z.boolean().optional(),
    /** Only files inside archives (`true`) or only top-level MIME parts (`false`). Default: both. */
    inArchive: z.boolean().optional(),
  })
  .strict()
  .refine((m) => Object.keys(m).some((k) => k !== 'inArchive'), {
    message: 'a rule must match on at least one of trueType, extension, declaredType, doubleExtension, mismatch',
  });

export const ruleSchema = z
  .object({
    /** Recorded in the envelope, the tracking event and the strip notice. */
    name: z.string().min(1).max(64),
    match: matchSchema,
    action,
    /** Record (and log) what the rule would do, but decide as if the rule were absent: trial a rule on live traffic. */
    dryRun: z.boolean().default(false),
  })
  .strict();

/**
 * The built-in policy: reject type mismatches and decoy double extensions; allow common documents, images, plain
 * text and archives (whose content is judged by the same rules). Anything else is unlisted → rejected.
 */
export const DEFAULT_RULES: z.input<typeof ruleSchema>[] = [
  { name: 'type-mismatch', match: { mismatch: true }, action: 'reject' },
  { name: 'double-extension', match: { doubleExtension: true }, action: 'reject' },
  { name: 'empty-files', match: { trueType: ['empty'] }, action: 'allow' },
  {
    name: 'documents',
    match: { trueType: ['pdf', 'docx', 'xlsx', 'pptx', 'odt', 'ods', 'odp', 'rtf'] },
    action: 'allow',
  },
  // Text has no magic bytes, and scripts (.js, .vbs, .bat) are text: allow it only under plain-text names.
  { name: 'text', match: { trueType: ['text'], extension: ['txt', 'csv', 'ics', 'vcf', 'log'] }, action: 'allow' },
  { name: 'images', match: { trueType: ['png', 'jpg', 'gif', 'webp', 'bmp', 'tif', 'heic'] }, action: 'allow' },
  // Archives pass only if every file inside passes the same rules (archives.inspect).
  { name: 'archives', match: { trueType: ['zip', 'gz', 'tar.gz', 'tar'] }, action: 'allow' },
];

const outcome = z.enum(['quarantine', 'reject', 'pass']);

export const attachmentPolicySchema = z
  .object({
    http: httpSchema('attachment-policy'),
    bus: busSchema.removeDefault().partial().optional(),
    /**
     * allow-list: a file no rule matched gets `unlisted.action` (default reject) — only listed types pass.
     * block-list: a file no rule matched passes.
     */
    mode: z.enum(['allow-list', 'block-list']).default('allow-list'),
    /** Rules, first match wins (like a firewall). */
    rules: z.array(ruleSchema).default(DEFAULT_RULES),
    /** allow-list mode: what happens to a file no rule matched. */
    unlisted: z
      .object({ action: action.default('reject'), dryRun: z.boolean().default(false) })
      .strict()
      .default({}),
    limits: z
      .object({
        /** Largest decoded attachment (bytes). */
        maxAttachmentBytes: z
          .number()
          .int()
          .positive()
          .default(25 * 1024 * 1024),
        /** Most attachments per message; the ones beyond it get `action`. */
        maxAttachments: z.number().int().positive().default(100),
        action: action.default('reject'),
      })
      .strict()
      .default({}),
    archives: z
      .object({
        /** Look inside zip, tar, tar.gz and gz attachments and judge every file there by the same rules. */
        inspect: z.boolean().default(true),
        /** Archives inside archives, counting the attachment itself as depth 1. Deeper ones hit `limitAction`. */
        maxDepth: z.number().int().min(1).max(16).default(3),
        /** Entries across one attachment and all its nested archives. */
        maxEntries: z.number().int().positive().default(1000),
        /** Uncompressed bytes across one attachment and all its nested archives (zip-bomb guard). */
        maxTotalBytes: z
          .number()
          .int()
          .positive()
          .default(200 * 1024 * 1024),
        /** Largest uncompressed/compressed ratio of an entry or archive (zip-bomb guard). */
        maxRatio: z.number().positive().default(100),
        /** An archive over any limit above (rule name `archive-limits`). */
        limitAction: action.default('reject'),
        /** An encrypted entry the gateway cannot look into (rule name `encrypted-archive`). */
        encryptedAction: action.default('reject'),
        /** An archive that cannot be read (corrupt, unsafe entry names) (rule name `unreadable-archive`). */
        unreadableAction: action.default('reject'),
      })
      .strict()
      .default({}),
    mime: z
      .object({
        /** Multipart / message/rfc822 nesting deeper than this is malformed. */
        maxDepth: z.number().int().positive().max(200).default(32),
        /** More MIME parts than this is malformed. */
        maxParts: z.number().int().positive().default(1000),
        /** One header block (all fields of the message or a part) larger than this is malformed. */
        maxHeaderBytes: z
          .number()
          .int()
          .positive()
          .default(256 * 1024),
      })
      .strict()
      .default({}),
    /** A message the MIME walk cannot make sense of. `pass` is fail-open (recorded as failedOpen). */
    malformed: z
      .object({ outcome: outcome.default('quarantine'), reason: z.string().min(1).default('malformed') })
      .strict()
      .default({}),
    /** Header added to a message from which parts were stripped (contracts MAIL_HEADERS.attachmentPolicy). */
    addHeader: z.boolean().default(true),
  })
  .strict()
  .default({});

export type AttachmentPolicyConfig = z.infer<typeof attachmentPolicySchema>;
export type Rule = z.infer<typeof ruleSchema>;
export type Match = z.infer<typeof matchSchema>;

/** A complete config from a partial document (tests, bench). Throws a ZodError on invalid input. */
export function policyConfig(doc: z.input<typeof attachmentPolicySchema> = {}): AttachmentPolicyConfig {
  return attachmentPolicySchema.parse(doc);
}
