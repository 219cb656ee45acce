// Moved to @mailgate/runtime (shared with the admin service's failed-auth throttle).
export { WindowCounter } from '@mailgate/runtime';
