// APIv3 times are RFC 3339 in Beijing time (`2018-06-08T10:34:56+08:00`); we keep unix seconds.

const BEIJING_OFFSET_SECONDS = 8 * 3600;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/** Formats unix seconds as RFC 3339 with the +08:00 offset APIv3 uses (e.g. `time_expire`). */
export function toBeijingTime(unixSeconds: number): string {
  if (!Number.isSafeInteger(unixSeconds)) throw new RangeError("time must be whole unix seconds");
  return `${new Date((unixSeconds + BEIJING_OFFSET_SECONDS) * 1000).toISOString().slice(0, 19)}+08:00`;
}

/** Parses an RFC 3339 date-time with an explicit offset into unix seconds; undefined when malformed. */
export function parseRfc3339(text: string): number | undefined {
  if (!RFC3339.test(text)) return undefined;
  const millis = Date.parse(text);
  return Number.isFinite(millis) ? Math.floor(millis / 1000) : undefined;
}
