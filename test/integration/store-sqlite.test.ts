import { rmSync } from 'node:fs';
import { SqliteStore } from '../../src/engines/sqlite/store.js';
import { storeContract } from '../contract/store.js';
import { tempDir } from '../helpers.js';

const dirs: string[] = [];
let last = '';
storeContract('sqlite', {
  async open(options) {
    last = tempDir('silk-sqlite-');
    dirs.push(last);
    return new SqliteStore({ ...options, dir: last });
  },
  async reopen(options) {
    return new SqliteStore({ ...options, dir: last });
  },
  async cleanup() {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  },
});
