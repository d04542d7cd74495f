// Operator CLI for the FiatGasPaymaster: `npm run paymaster -- <command> [--flags]`.
// Everything lives in scripts/operator/; this file only binds it to the process.
import { main } from "./operator/cli.ts";

process.exitCode = await main(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
});
