// The detector's arithmetic: EWMA baseline, the rule, warm-up on the declared baseline, incremental
// folding with gaps and clamping. Pure functions: no database, no Temporal.
import {
  alphaFor,
  DEFAULT_DETECTOR_SETTINGS,
  detect,
  effectiveBaseline,
  evaluate,
  foldOne,
  foldUntil,
  MINUTE_MS,
  minuteOf,
  resolveDetectorSettings,
  thresholdOf,
  type BaselineState,
} from '../../../scenarios/anomaly/detector';

const S = DEFAULT_DETECTOR_SETTINGS;
const T0 = Date.UTC(2025, 0, 1, 12, 0);
const m = (i: number) => T0 + i * MINUTE_MS;

/** Buckets for minutes [0, n) with count(i). */
function history(n: number, count: (i: number) => number): Map<number, number> {
  return new Map(Array.from({ length: n }, (_, i) => [m(i), count(i)] as [number, number]));
}

test('alpha follows the half-life: after one half-life an old value weighs one half', () => {
  const a = alphaFor(60);
  expect(Math.pow(1 - a, 60)).toBeCloseTo(0.5, 10);
});

test('early on, the plain running mean: the first minute seen does not dominate', () => {
  let s: BaselineState | null = null;
  [10, 20, 30, 40].forEach((x, i) => (s = foldOne(s, x, m(i), S)));
  expect(s!.mean).toBeCloseTo(25, 10);
});

test('a steady rate gives that mean and no variance; the rule is max(k×b, b+zσ) and minRate', () => {
  const s = foldUntil(null, history(60, () => 20), m(60), null, S)!;
  expect(s.samples).toBe(60);
  expect(s.mean).toBeCloseTo(20, 10);
  expect(s.variance).toBeCloseTo(0, 10);
  const b = effectiveBaseline(s, null, S);
  expect(b).toMatchObject({ source: 'history', rate: expect.closeTo(20, 6) });
  expect(thresholdOf(b, S)).toBeCloseTo(60, 6); // 3 × 20 beats 20 + 4·0
  expect(evaluate(60, b, S).anomalous).toBe(false); // strictly above
  expect(evaluate(61, b, S).anomalous).toBe(true);
});

test('a noisy baseline raises the bar to baseline + z·σ', () => {
  // Alternating 10 and 50: mean ~30, σ ~20 → 30 + 4·20 = 110 > 3 × 30 = 90.
  const s = foldUntil(null, history(240, (i) => (i % 2 ? 50 : 10)), m(240), null, S)!;
  const b = effectiveBaseline(s, null, S);
  expect(b.rate).toBeGreaterThan(28);
  expect(b.rate).toBeLessThan(32);
  expect(b.sigma).toBeGreaterThan(18);
  expect(thresholdOf(b, S)).toBeCloseTo(b.rate + 4 * b.sigma, 6);
  expect(evaluate(100, b, S).anomalous).toBe(false); // above 3×30 but within the noise
  expect(evaluate(130, b, S).anomalous).toBe(true);
});

test('minimum volume: a quiet NHI is not paged for a handful of events', () => {
  const s = foldUntil(null, history(60, () => 1), m(60), null, S)!;
  const b = effectiveBaseline(s, null, S);
  expect(evaluate(9, b, S).anomalous).toBe(false); // 9 > 3×1 but < minRate 10
  expect(evaluate(10, b, S).anomalous).toBe(true);
});

test('short history: the declared baseline stands in (σ = √b); with none, warming up never fires', () => {
  const s = foldUntil(null, history(5, () => 100), m(5), null, S)!;
  expect(s.samples).toBe(5);
  const declared = effectiveBaseline(s, 20, S);
  expect(declared).toMatchObject({ source: 'declared', rate: 20, sigma: Math.sqrt(20) });
  expect(evaluate(61, declared, S).anomalous).toBe(true);
  const none = effectiveBaseline(s, null, S);
  expect(none.source).toBe('none');
  const v = evaluate(10_000, none, S);
  expect(v).toMatchObject({ anomalous: false, threshold: null });
  expect(v.reason).toMatch(/warming up: 5\/30/);
});

test('spikes are clamped when folded: the baseline does not learn that spikes are normal', () => {
  const buckets = history(120, (i) => (i === 100 ? 10_000 : 20));
  const clamped = foldUntil(null, buckets, m(120), null, S)!;
  // Unclamped, one 10 000 minute would lift a mean of 20 by ~100 and hold it there for hours.
  expect(clamped.mean).toBeLessThan(21);
  expect(evaluate(200, effectiveBaseline(clamped, null, S), S).anomalous).toBe(true);
});

test('minutes without a bucket count as zero; a gap longer than maxFoldMinutes folds only its end', () => {
  // A long history: past the running-mean phase, plain EWMA decay.
  const s0: BaselineState = { mean: 20, variance: 0, samples: 1000, throughMinute: m(0) };
  const after10 = foldUntil(s0, new Map(), m(11), null, S)!;
  expect(after10.samples).toBe(1010);
  expect(after10.mean).toBeCloseTo(20 * Math.pow(1 - alphaFor(S.halfLifeMinutes), 10), 8);
  expect(after10.throughMinute).toBe(m(10));
  const settings = resolveDetectorSettings({ maxFoldMinutes: 30 });
  const afterDay = foldUntil(s0, new Map(), m(24 * 60), null, settings)!;
  expect(afterDay.samples).toBe(1030);
  expect(afterDay.throughMinute).toBe(m(24 * 60 - 1));
});

test('detect folds only what closed since the last call, and judges the (partial) current minute', () => {
  const buckets = history(60, () => 5);
  let { state, verdict } = detect(null, buckets, m(59), null, S);
  expect(state.samples).toBe(59);
  expect(state.throughMinute).toBe(m(58));
  expect(verdict.anomalous).toBe(false);
  // The same minute again (more events arrived in it): nothing new is folded.
  buckets.set(m(59), 8);
  ({ state, verdict } = detect(state, buckets, m(59), null, S));
  expect(state.samples).toBe(59);
  expect(verdict.rate).toBe(8);
  // Next minute, a spike: minute 59 is folded, minute 60 judged.
  buckets.set(m(60), 200);
  ({ state, verdict } = detect(state, buckets, m(60), null, S));
  expect(state.samples).toBe(60);
  expect(verdict.anomalous).toBe(true);
  expect(verdict.reason).toMatch(/^200\/min is above 15(\.\d+)?\/min \(history baseline 5/);
  // A late event for an old minute does not rewind the baseline.
  const late = detect(state, buckets, m(10), null, S);
  expect(late.state).toEqual(state);
});

test('the first data ever: no history, the state starts at this minute', () => {
  const { state, verdict } = detect(null, new Map([[m(0), 50]]), m(0), 5, S);
  expect(state).toEqual({ mean: 0, variance: 0, samples: 0, throughMinute: m(-1) });
  expect(verdict.baseline.source).toBe('declared');
  expect(verdict.anomalous).toBe(true); // 50 > max(15, 5 + 4·√5 ≈ 13.9, 10)
  const next = foldOne(state, 50, m(0), S);
  expect(next).toMatchObject({ mean: 50, samples: 1 });
});

test('settings are checked', () => {
  expect(() => resolveDetectorSettings({ k: 0.5 })).toThrow(/k must be/);
  expect(() => resolveDetectorSettings({ halfLifeMinutes: 0 })).toThrow(/halfLifeMinutes/);
  expect(() => resolveDetectorSettings({ minHistoryMinutes: 1.5 })).toThrow(/minHistoryMinutes/);
  expect(minuteOf(m(3) + 59_999)).toBe(m(3));
});
