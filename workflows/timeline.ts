// A status's timeline, kept within a cap: the oldest entries go first and are counted, the audit
// trail keeps the full record. Plain data, safe in the workflow bundle.

/** Timeline entries a long-lived workflow keeps in its status. */
export const TIMELINE_MAX = 200;

export interface CappedTimeline {
  timeline: { at: string; event: string; detail?: string }[];
  /** Entries dropped by the cap. */
  timelineDropped?: number;
}

export function addTimelineEntry(status: CappedTimeline, event: string, detail?: string, max = TIMELINE_MAX): void {
  status.timeline.push({ at: new Date(Date.now()).toISOString(), event, detail });
  if (status.timeline.length > max) {
    status.timelineDropped = (status.timelineDropped ?? 0) + status.timeline.length - max;
    status.timeline.splice(0, status.timeline.length - max);
  }
}
