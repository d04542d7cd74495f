import { createRequire } from "node:module";

import hardhatNetworkHelpers from "@nomicfoundation/hardhat-network-helpers";
import hardhatNodeTestRunner from "@nomicfoundation/hardhat-node-test-runner";
import hardhatViem from "@nomicfoundation/hardhat-viem";
import { defineConfig } from "hardhat/config";

// The wasm compiler from the npm `solc` package: builds work offline, with no compiler download.
const solcPath = createRequire(import.meta.url).resolve("solc/soljson.js");
const compiler = {
  version: "0.8.28",
  path: solcPath,
  settings: { optimizer: { enabled: true, runs: 1_000_000 }, evmVersion: "cancun" },
};

export default defineConfig({
  plugins: [hardhatViem, hardhatNodeTestRunner, hardhatNetworkHelpers],
  solidity: {
    profiles: { default: compiler, production: compiler },
    // Test-only builds of contracts that ship in npm packages (deployed by name in tests and the gas report).
    npmFilesToBuild: ["@account-abstraction/contracts/samples/VerifyingPaymaster.sol"],
  },
  paths: { tests: { solidity: "test/solidity", nodejs: "test/contracts" } },
  test: { solidity: { fuzz: { runs: 256 } } },
});
