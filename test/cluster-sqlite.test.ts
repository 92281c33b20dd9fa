import { join } from 'node:path';
import { describe } from 'vitest';
import { clusterCases } from './fixtures/cluster/cases.js';

describe('cluster on one SQLite file (real processes)', () => {
  clusterCases('sqlite', (dir) => join(dir, 'cluster.db'));
});
