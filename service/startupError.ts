/** A reason the service cannot start; `problems` lists each one, and main.ts prints them and exits 2. */
export class StartupError extends Error {
  readonly problems: string[];
  constructor(heading: string, problems: string[]) {
    super(`${heading}:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.problems = problems;
  }
}
