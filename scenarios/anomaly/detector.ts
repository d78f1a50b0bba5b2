// The usage anomaly detector: pure functions (no I/O), so the API, the collector activity, the
// benchmark and the unit tests share one definition.
//
// Per NHI, a baseline of events per minute is kept as an exponentially weighted moving average
// (EWMA) of the rate and of its variance over closed minutes. A minute is anomalous when
//   rate > max(k × baseline, baseline + z·σ)   and   rate ≥ minRate.
// While the history is shorter than `minHistoryMinutes`, the inventory's declared baseline stands
// in (σ = √baseline, as for a Poisson count); with neither, the NHI is warming up and nothing fires.
// Folding is incremental: each call folds only the minutes closed since the last one, and folded
// values are clamped to the threshold in force, so a spike does not teach the baseline that spikes
// are normal.

export interface DetectorSettings {
  /** Rate must exceed k × baseline. */
  k: number;
  /** …and baseline + z·σ. */
  z: number;
  /** …and be at least this many events per minute (quiet NHIs are not paged for 3 events). */
  minRate: number;
  /** EWMA half-life in minutes: how fast old minutes stop counting. */
  halfLifeMinutes: number;
  /** Closed minutes of history before the history (not the declared baseline) is trusted. */
  minHistoryMinutes: number;
  /** At most this many minutes are folded in one step; a longer gap only folds its last part. */
  maxFoldMinutes: number;
}

export const DEFAULT_DETECTOR_SETTINGS: DetectorSettings = {
  k: 3,
  z: 4,
  minRate: 10,
  halfLifeMinutes: 120,
  minHistoryMinutes: 30,
  maxFoldMinutes: 24 * 60,
};

/** What is stored per NHI between calls. */
export interface BaselineState {
  mean: number;
  variance: number;
  /** Closed minutes folded in so far. */
  samples: number;
  /** Epoch ms of the start of the last minute folded in (the next one folded is the minute after). */
  throughMinute: number;
}

export interface Baseline {
  rate: number;
  sigma: number;
  source: 'history' | 'declared' | 'none';
  samples: number;
}

export interface Verdict {
  anomalous: boolean;
  rate: number;
  baseline: Baseline;
  /** The rate a minute must exceed (null while warming up). */
  threshold: number | null;
  reason: string;
}

export const MINUTE_MS = 60_000;

export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

export function alphaFor(halfLifeMinutes: number): number {
  return 1 - Math.pow(2, -1 / Math.max(halfLifeMinutes, 1e-9));
}

/** Check settings once (config and API input reach here); throws with the field's name. */
export function resolveDetectorSettings(partial: Partial<DetectorSettings> = {}): DetectorSettings {
  const s = { ...DEFAULT_DETECTOR_SETTINGS, ...partial };
  const positive = (n: number) => Number.isFinite(n) && n > 0;
  if (!(Number.isFinite(s.k) && s.k >= 1)) throw new Error('detector k must be a number ≥ 1');
  if (!(Number.isFinite(s.z) && s.z >= 0)) throw new Error('detector z must be a number ≥ 0');
  if (!(Number.isFinite(s.minRate) && s.minRate >= 0)) throw new Error('detector minRate must be a number ≥ 0');
  if (!positive(s.halfLifeMinutes)) throw new Error('detector halfLifeMinutes must be > 0');
  if (!(Number.isInteger(s.minHistoryMinutes) && s.minHistoryMinutes >= 1)) throw new Error('detector minHistoryMinutes must be a whole number ≥ 1');
  if (!(Number.isInteger(s.maxFoldMinutes) && s.maxFoldMinutes >= 1)) throw new Error('detector maxFoldMinutes must be a whole number ≥ 1');
  return s;
}

/** The baseline in force: the history once long enough, else the declared one, else none. */
export function effectiveBaseline(state: BaselineState | null, declared: number | null | undefined, settings: DetectorSettings): Baseline {
  const samples = state?.samples ?? 0;
  if (state && samples >= settings.minHistoryMinutes) {
    return { rate: state.mean, sigma: Math.sqrt(Math.max(state.variance, 0)), source: 'history', samples };
  }
  if (declared !== null && declared !== undefined && Number.isFinite(declared) && declared >= 0) {
    return { rate: declared, sigma: Math.sqrt(Math.max(declared, 1)), source: 'declared', samples };
  }
  return { rate: state?.mean ?? 0, sigma: 0, source: 'none', samples };
}

export function thresholdOf(b: Baseline, settings: DetectorSettings): number | null {
  if (b.source === 'none') return null;
  return Math.max(settings.k * b.rate, b.rate + settings.z * b.sigma, settings.minRate);
}

/** Is this rate (events in one minute) anomalous against this baseline? */
export function evaluate(rate: number, b: Baseline, settings: DetectorSettings): Verdict {
  const threshold = thresholdOf(b, settings);
  if (threshold === null) {
    return { anomalous: false, rate, baseline: b, threshold, reason: `warming up: ${b.samples}/${settings.minHistoryMinutes} minutes of history and no declared baseline` };
  }
  // Strictly above k×baseline and baseline+zσ; at least minRate.
  const above = rate > Math.max(settings.k * b.rate, b.rate + settings.z * b.sigma) && rate >= settings.minRate;
  const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
  return {
    anomalous: above,
    rate,
    baseline: b,
    threshold,
    reason: above
      ? `${fmt(rate)}/min is above ${fmt(threshold)}/min (${b.source} baseline ${fmt(b.rate)}/min, σ ${fmt(b.sigma)})`
      : `${fmt(rate)}/min is within ${fmt(threshold)}/min (${b.source} baseline ${fmt(b.rate)}/min)`,
  };
}

/** Fold one closed minute's count into the EWMA (West's incremental mean and variance). */
export function foldOne(state: BaselineState | null, x: number, minute: number, settings: DetectorSettings): BaselineState {
  if (!state || state.samples === 0) return { mean: x, variance: 0, samples: 1, throughMinute: minute };
  // Bias correction: the plain running mean until the history is longer than the EWMA's memory,
  // so the first minute seen does not dominate for hours.
  const a = Math.max(alphaFor(settings.halfLifeMinutes), 1 / (state.samples + 1));
  const d = x - state.mean;
  const mean = state.mean + a * d;
  const variance = (1 - a) * (state.variance + a * d * d);
  return { mean, variance, samples: state.samples + 1, throughMinute: minute };
}

/**
 * Fold every closed minute in (state.throughMinute, before) — minutes without a bucket count as
 * zero. Without a state, history starts at the first bucket. Values above the threshold in force
 * are clamped to it first.
 */
export function foldUntil(
  state: BaselineState | null,
  buckets: ReadonlyMap<number, number>,
  before: number,
  declared: number | null | undefined,
  settings: DetectorSettings,
): BaselineState | null {
  let start: number;
  if (state) {
    start = state.throughMinute + MINUTE_MS;
  } else {
    const earlier = [...buckets.keys()].filter((m) => m < before);
    if (!earlier.length) return null;
    start = Math.min(...earlier);
  }
  start = Math.max(start, before - settings.maxFoldMinutes * MINUTE_MS);
  let s = state;
  for (let m = start; m < before; m += MINUTE_MS) {
    const raw = buckets.get(m) ?? 0;
    const limit = thresholdOf(effectiveBaseline(s, declared, settings), settings);
    s = foldOne(s, limit === null ? raw : Math.min(raw, limit), m, settings);
  }
  return s;
}

/**
 * One detection step for one NHI: fold the minutes closed before `minute`, then judge `minute`'s
 * count (possibly a partial minute: the count only grows, so it fires as soon as it crosses).
 * With no history at all, the state records `minute - 1` as folded so the next call starts here.
 */
export function detect(
  state: BaselineState | null,
  buckets: ReadonlyMap<number, number>,
  minute: number,
  declared: number | null | undefined,
  settings: DetectorSettings,
): { state: BaselineState; verdict: Verdict } {
  let next = foldUntil(state, buckets, minute, declared, settings);
  // A late event for a minute already folded is counted in its bucket but does not rewind the baseline.
  if (next && next.throughMinute >= minute) next = state;
  const s = next ?? { mean: 0, variance: 0, samples: 0, throughMinute: minute - MINUTE_MS };
  const verdict = evaluate(buckets.get(minute) ?? 0, effectiveBaseline(s, declared, settings), settings);
  return { state: s, verdict };
}
