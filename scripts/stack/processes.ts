// The local stack's child processes: each runs in its own process group (so a terminal's Ctrl-C
// reaches only the stack, which then stops the children one by one, newest first), writes its
// output to a log file, and reports an exit the stack did not ask for.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, createWriteStream, openSync, readSync, statSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";

/** A child the supervisor started. */
export type ManagedProcess = {
  name: string;
  pid: number;
  logFile: string;
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Resolves when it has exited. */
  exited: Promise<void>;
};

/** How a process ended, in words: "exit code 1", "signal SIGKILL". */
export function describeExit(exit: NonNullable<ManagedProcess["exit"]>): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** The last `lines` lines of a log file, reading at most its last 64 KiB. */
export function tailFile(file: string, lines = 20): string {
  let fd: number | undefined;
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 65_536);
    const buffer = Buffer.alloc(length);
    fd = openSync(file, "r");
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Sends `signal` to a child's whole process group; false when none is left. */
function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export type Supervisor = ReturnType<typeof createSupervisor>;

/**
 * Starts and stops the stack's children. `onUnexpectedExit` is called once for the first child that
 * exits while the stack is neither stopping nor stopped.
 */
export function createSupervisor({ logDir, onUnexpectedExit }: { logDir: string; onUnexpectedExit: (child: ManagedProcess) => void }) {
  const children: ManagedProcess[] = [];
  let stopping = false;

  return {
    children: (): readonly ManagedProcess[] => children,

    /**
     * Starts `command` as child `name`, its stdout and stderr appended to `<logDir>/<name>.log`
     * (stdout only the lines `keepLine` keeps, when given). A `oneShot` child (a build) is expected
     * to exit; any other child exiting is reported.
     */
    start(
      name: string,
      command: string,
      args: string[],
      { env, cwd, oneShot = false, keepLine }: { env: NodeJS.ProcessEnv; cwd: string; oneShot?: boolean; keepLine?: (line: string) => boolean },
    ): ManagedProcess {
      if (stopping) throw new Error(`not starting ${name}: the stack is stopping`);
      const logFile = path.join(logDir, `${name}.log`);
      const fd = openSync(logFile, "a", 0o600);
      let child: ChildProcess;
      try {
        // detached: its own process group, so the terminal's SIGINT reaches the stack alone and the
        // stack decides the order children stop in. The child writes to the file itself: no pipe to drain.
        child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", keepLine ? "pipe" : fd, fd] });
      } finally {
        closeSync(fd);
      }
      if (keepLine && child.stdout) {
        const log = createWriteStream(logFile, { flags: "a" });
        const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
        lines.on("line", (line) => {
          if (keepLine(line)) log.write(`${line}\n`);
        });
        lines.once("close", () => log.end());
      }
      let markExited!: () => void;
      const managed: ManagedProcess = { name, pid: child.pid ?? -1, logFile, exit: null, exited: new Promise((resolve) => (markExited = resolve)) };
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (managed.exit) return;
        managed.exit = { code, signal };
        markExited();
        if (!stopping && !oneShot) onUnexpectedExit(managed);
      };
      // A command that cannot be started at all (ENOENT) emits only "error".
      child.once("error", () => finish(127, null));
      child.once("exit", finish);
      children.push(managed);
      return managed;
    },

    /** Whether stop() has begun. */
    stopping: () => stopping,

    /**
     * Stops every child, newest first: SIGTERM to its process group, then SIGKILL after `graceMs`.
     * `onStopped` reports each one as it goes.
     */
    async stop({ graceMs = 10_000, onStopped = () => {} }: { graceMs?: number; onStopped?: (child: ManagedProcess, forced: boolean) => void } = {}) {
      stopping = true;
      for (const child of [...children].reverse()) {
        let forced = false;
        if (!child.exit && child.pid > 0) {
          signalGroup(child.pid, "SIGTERM");
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)));
          forced = await Promise.race([child.exited.then(() => false), timedOut]);
          clearTimeout(timer);
          if (forced) {
            signalGroup(child.pid, "SIGKILL");
            await child.exited;
          }
        }
        // Anything the child left behind in its group (none of ours fork, but a leak must not outlive the stack).
        if (child.pid > 0) signalGroup(child.pid, "SIGKILL");
        onStopped(child, forced);
      }
    },

    /** Last resort when the stack process is exiting anyway: SIGKILL to every child still running, synchronously. */
    killAll() {
      stopping = true;
      for (const child of children) if (!child.exit && child.pid > 0) signalGroup(child.pid, "SIGKILL");
    },
  };
}
