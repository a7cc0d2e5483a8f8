import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRatio, median } from './stats.js';

test('median of odd and even samples', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('ratio formatting', () => {
  assert.equal(formatRatio(8, 10), '0.80×');
  assert.equal(formatRatio(1, 0), 'n/a');
});
