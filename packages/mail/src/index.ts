// @mailgate/mail — one view of message bytes for every stage. See README.md.
export {
  MalformedMimeError,
  headerEnd,
  readHeaderBlock,
  parseFields,
  field,
  fieldValues,
  messageHeaders,
  lineBreakOf,
  type HeaderField,
  type HeaderBlock,
  type HeaderEnd,
} from './headers.js';
export {
  parseStructured,
  stripComments,
  decodeHeaderText,
  decodeWordsSafe,
  type StructuredValue,
} from './structured.js';
export {
  decodeBody,
  decodeQuotedPrintable,
  decodeUuencode,
  encodingReadings,
  type Decoding,
  type EncodingReading,
} from './decode.js';
export {
  walkMime,
  leaves,
  bodyReadings,
  isAttachmentCandidate,
  isBodyText,
  scanTargets,
  bodyTexts,
  DEFAULT_MIME_LIMITS,
  type MimeLimits,
  type MimePart,
  type PartKind,
  type ParsedMessage,
  type BodyReading,
  type ScanTarget,
} from './walk.js';
export { widestHeaderEnd, headerBlockBytes, headerValues, headerSafe, prependHeader, removeHeaders } from './edit.js';
