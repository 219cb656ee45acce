// @mailgate/lists — sender and client-IP allow/block lists, live in Redis. See entries.ts for the semantics.
export {
  LIST_KINDS,
  ListEntryError,
  ListSnapshot,
  isExpired,
  isListKind,
  normalizeValue,
  parseNetwork,
  type IpMatch,
  type ListEntry,
  type ListKind,
  type SenderMatch,
} from './entries.js';
export { ListStore, LiveLists, type AddEntry, type LiveListsOptions } from './store.js';
export { listsConfigSchema, seedEntries, type ListsConfig } from './config.js';
