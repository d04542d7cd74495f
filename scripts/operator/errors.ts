// The operator CLI's error model: an OperatorError is an expected refusal and prints as one line;
// anything else is a bug and keeps its stack.

/** A refusal the operator can act on: a precondition failed on chain, or the chain refused. Exit code 1. */
export class OperatorError extends Error {
  override name = "OperatorError";
  readonly exitCode: number = 1;
}

/** Bad flags, environment or command line: nothing was read from or sent to the chain. Exit code 2. */
export class UsageError extends OperatorError {
  override name = "UsageError";
  override readonly exitCode: number = 2;
}
