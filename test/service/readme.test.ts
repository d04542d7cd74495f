// The README's configuration reference is the operator's manual: it must list exactly the
// settings the service reads, so a new setting cannot ship undocumented.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";

import { serviceConfigSchema } from "../../service/config.ts";

it("documents every service setting in the README's configuration reference, and no other", () => {
  const readme = readFileSync(path.join(import.meta.dirname, "../../README.md"), "utf8");
  const reference = readme.slice(readme.indexOf("### Configuration reference"));
  const documented = [...reference.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map(([, name]) => name);
  assert.deepEqual([...documented].sort(), Object.keys(serviceConfigSchema.shape).sort());
  assert.equal(new Set(documented).size, documented.length, "each setting once");
});
