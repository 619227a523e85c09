// Latency recording for cache-bench: hdr-histogram-js histograms in microseconds, 3 significant
// digits, auto-resizing (a stalled op of many seconds still records). LatencySummary is the
// plain-data view the report and --json print.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

export interface LatencySummary {
  count: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50Us: 0, p99Us: 0, p999Us: 0, maxUs: 0, meanUs: 0 };
  // a percentile is reported as the highest value of its bucket (within 0.1%), which can lie
  // above the largest value recorded: clamp, so that p999 <= max always reads true
  const at = (p: number): number => Math.min(h.getValueAtPercentile(p), h.maxValue);
  return {
    count: h.totalCount,
    p50Us: at(50),
    p99Us: at(99),
    p999Us: at(99.9),
    maxUs: h.maxValue,
    meanUs: Math.round(h.mean),
  };
}
