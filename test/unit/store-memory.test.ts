import { MemoryStore } from '../../src/engines/memory/store.js';
import { storeContract } from '../contract/store.js';

storeContract('memory', { open: async (options) => new MemoryStore(options), densePositions: true });
