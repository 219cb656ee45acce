// InitProducerId (22): a fresh producer id for idempotent producers (unique across restarts in data-dir mode).
// v3+ may name its current id and epoch to bump the epoch (KIP-360); transactions are not supported.
import { defineApi } from './types.js';

export const initProducerId = defineApi<{ transactionalId: string | null; producerId: number; producerEpoch: number }>({
  name: 'InitProducerId',
  versions: [0, 4],
  handle(req, { broker }) {
    const bump = req.producerId >= 0 && req.producerEpoch >= 0 && req.producerEpoch < 0x7ffe;
    return {
      throttleTimeMs: 0,
      errorCode: 0,
      producerId: bump ? req.producerId : broker.store.allocateProducerId(),
      producerEpoch: bump ? req.producerEpoch + 1 : 0,
    };
  },
});
