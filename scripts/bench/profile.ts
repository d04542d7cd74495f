// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by function,
// inclusive time by function, and self time by package. Idle time is left out of the shares.
import { readFileSync } from "node:fs";
import path from "node:path";

type ProfileNode = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
};

type CpuProfile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export type ProfileEntry = { name: string; ms: number; share: number };

export type ProfileSummary = {
  /** Sampled wall time of the whole profile, ms; busy excludes (idle). */
  totalMs: number;
  busyMs: number;
  topSelf: ProfileEntry[];
  topInclusive: ProfileEntry[];
  byPackage: ProfileEntry[];
};

const root = path.resolve(import.meta.dirname, "../..");

/** A frame's location, shortened: the package inside node_modules, or the path inside the project. */
function where(url: string): string {
  if (url === "") return "";
  const file = url.startsWith("file://") ? url.slice("file://".length) : url;
  const inModules = file.lastIndexOf("/node_modules/");
  if (inModules >= 0) return file.slice(inModules + "/node_modules/".length);
  return file.startsWith(root) ? path.relative(root, file) : file;
}

/** The package (or project folder, or runtime bucket) a frame belongs to. */
function packageOf(frame: ProfileNode["callFrame"]): string {
  if (frame.url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  if (frame.url.startsWith("node:")) return "node: internals";
  const location = where(frame.url);
  if (frame.url.includes("/node_modules/")) {
    const parts = location.split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  return location.split("/").slice(0, 2).join("/");
}

const label = (frame: ProfileNode["callFrame"]) =>
  frame.url === "" ? frame.functionName || "(anonymous)" : `${frame.functionName || "(anonymous)"} ${where(frame.url)}:${frame.lineNumber + 1}`;

// Frames that only dispatch work and would top any inclusive list.
const PLUMBING = new Set(["(root)", "(program)", "(idle)", "processTicksAndRejections", "runMicrotasks", "listOnTimeout", "processTimers"]);

/** Summarises `file`; `top` entries per list. */
export function summariseProfile(file: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // A sample's time is the delta to the next one; the last sample gets the mean.
  const total = profile.endTime - profile.startTime;
  const mean = total / Math.max(1, profile.samples.length);
  const self = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index + 1] ?? mean;
    self.set(id, (self.get(id) ?? 0) + delta);
  });

  const selfByLabel = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const ancestorsOf = new Map<number, Set<string>>();
  const ancestors = (id: number): Set<string> => {
    let set = ancestorsOf.get(id);
    if (set) return set;
    const up = parent.get(id);
    set = new Set(up === undefined ? [] : ancestors(up));
    set.add(label(byId.get(id)!.callFrame));
    ancestorsOf.set(id, set);
    return set;
  };
  let idle = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    selfByLabel.set(label(frame), (selfByLabel.get(label(frame)) ?? 0) + us);
    byPackage.set(packageOf(frame), (byPackage.get(packageOf(frame)) ?? 0) + us);
    for (const name of ancestors(id)) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  }
  const busy = total - idle;
  const entries = (map: Map<string, number>, keep: (name: string) => boolean = () => true) =>
    [...map]
      .filter(([name]) => keep(name))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), share: us / busy }));
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    topSelf: entries(selfByLabel),
    topInclusive: entries(inclusive, (name) => !PLUMBING.has(name.split(" ")[0])),
    byPackage: entries(byPackage),
  };
}

/** The summary as text lines, for the console. */
export function formatProfile(title: string, summary: ProfileSummary): string[] {
  const pct = (share: number) => `${(share * 100).toFixed(1).padStart(5)}%`;
  const list = (heading: string, entries: ProfileEntry[]) => [heading, ...entries.map((entry) => `  ${pct(entry.share)} ${String(entry.ms).padStart(6)} ms  ${entry.name}`)];
  return [
    `${title}: ${summary.busyMs} ms busy of ${summary.totalMs} ms profiled (shares are of busy time)`,
    ...list(" self time by package", summary.byPackage),
    ...list(" self time by function", summary.topSelf),
    ...list(" inclusive time by function", summary.topInclusive),
  ];
}
