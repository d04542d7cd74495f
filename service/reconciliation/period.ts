// The period a reconciliation covers: [from, to) in whole unix seconds, given as ISO 8601 or unix
// seconds. One parser for the admin route and the CLI, so both accept and refuse the same input.
import { z } from "zod";

/** [from, to) in unix seconds. */
export type Period = { from: number; to: number };

/** The longest period one report covers: gateway queries and log reads grow with it. */
export const MAX_PERIOD_SECONDS = 31 * 86_400;

/** What an instant may look like, for error messages. */
export const INSTANT_FORMS = "an ISO 8601 date or time (2025-06-01, 2025-06-01T08:00:00Z, 2025-06-01T16:00:00+08:00) or unix seconds";

const UNIX = /^\d{1,11}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
// Fractions of a second are refused rather than rounded: the period's ends are exact seconds.
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2})$/;

/** Unix seconds for the UTC calendar fields, or null when a field is out of range (2025-02-30, 24:00). */
function utcSeconds(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number | null {
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 2025-02-30 over to March; a date that does not survive the round trip does not exist.
  if (new Date(ms).getUTCDate() !== day) return null;
  return ms / 1000;
}

/** Parses one end of a period; null when it is none of INSTANT_FORMS. */
export function parseInstant(text: string): number | null {
  if (UNIX.test(text)) return Number(text);
  const date = DATE.exec(text);
  if (date) return utcSeconds(Number(date[1]), Number(date[2]), Number(date[3]));
  const time = DATE_TIME.exec(text);
  if (!time) return null;
  const local = utcSeconds(Number(time[1]), Number(time[2]), Number(time[3]), Number(time[4]), Number(time[5]), Number(time[6] ?? "0"));
  if (local === null) return null;
  if (time[7] === "Z") return local;
  const [hours, minutes] = time[7].slice(1).split(":").map(Number);
  if (hours > 14 || minutes > 59) return null;
  const offset = (hours * 3600 + minutes * 60) * (time[7][0] === "+" ? 1 : -1);
  return local - offset;
}

/** One end of a period as a zod schema: a string in one of INSTANT_FORMS, parsed to unix seconds. */
export const instantSchema = z
  .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
  .transform((text, context) => {
    const seconds = parseInstant(text.trim());
    if (seconds === null) {
      context.addIssue({ code: "custom", message: `must be ${INSTANT_FORMS}` });
      return z.NEVER;
    }
    return seconds;
  });

/** The problems with a period, as { path, message }; empty when it is valid at `now` (unix seconds). */
export function periodProblems({ from, to }: Period, now: number): { path: "from" | "to"; message: string }[] {
  if (from >= now) return [{ path: "from", message: "must be in the past: there is nothing to reconcile yet" }];
  if (to <= from) return [{ path: "to", message: "must be after from (the period is [from, to))" }];
  if (to - from > MAX_PERIOD_SECONDS) return [{ path: "to", message: `must be at most ${MAX_PERIOD_SECONDS / 86_400} days after from: reconcile a longer span as several periods` }];
  return [];
}

/** `{ from, to }` as the route's querystring and the CLI take them; `now()` in unix seconds. */
export function periodSchema(now: () => number = () => Math.floor(Date.now() / 1000)) {
  return z
    .object({
      from: instantSchema.describe(`start of the period, inclusive: ${INSTANT_FORMS}`),
      to: instantSchema.describe(`end of the period, exclusive: ${INSTANT_FORMS}; at most ${MAX_PERIOD_SECONDS / 86_400} days after from`),
    })
    .superRefine((period, context) => {
      for (const { path, message } of periodProblems(period, now())) context.addIssue({ code: "custom", path: [path], message });
    });
}
