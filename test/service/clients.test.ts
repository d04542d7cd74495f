// Unmodified clients against our /rpc: permissionless's smart account client with viem's paymaster
// client as `paymaster`, sending real sponsored UserOperations through the Alto bundler.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createSmartAccountClient } from "permissionless";
import { toSimpleSmartAccount } from "permissionless/accounts";
import { getAddress, http, parseEventLogs } from "viem";
import { createPaymasterClient } from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { ENTRYPOINT_ADDRESS, ENTRYPOINT_VERSIONS } from "../../service/chain/entryPoints.ts";
import { entryPointAbi } from "../support/aa.ts";
import { type AltoBundler, startAlto } from "../support/alto.ts";
import { type ServiceStack, startServiceStack } from "../support/serviceFixture.ts";

const TARGET = "0x00000000000000000000000000000000000000cc";
let stack: ServiceStack;
let alto: AltoBundler;

before(async () => {
  stack = await startServiceStack();
  alto = await startAlto(stack.anvil, [ENTRYPOINT_ADDRESS["0.7"], ENTRYPOINT_ADDRESS["0.8"]]);
});
after(async () => {
  await alto?.stop();
  await stack?.stop();
});

/** The standard tier of our fee suggestions, as permissionless's estimateFeesPerGas hook wants it. */
async function standardFees() {
  const response = await fetch(`${stack.url}/v1/gas-prices`);
  const { standard } = (await response.json()) as { standard: { maxFeePerGas: string; maxPriorityFeePerGas: string } };
  return { maxFeePerGas: BigInt(standard.maxFeePerGas), maxPriorityFeePerGas: BigInt(standard.maxPriorityFeePerGas) };
}

for (const version of ENTRYPOINT_VERSIONS) {
  describe(`permissionless smart account client on EntryPoint v${version}`, () => {
    it("sends sponsored operations through Alto with viem's paymaster client pointed at /rpc", async () => {
      const owner = privateKeyToAccount(generatePrivateKey());
      const account = await toSimpleSmartAccount({
        client: stack.anvil.publicClient,
        owner,
        entryPoint: { address: ENTRYPOINT_ADDRESS[version], version },
        factoryAddress: stack.deployment(version).factory,
      });
      const { factory, factoryData } = await account.getFactoryArgs();
      const session = await stack.signIn({ owner, sender: account.address, factory: factory!, factoryData: factoryData! });
      await stack.service.ledger.credit(account.address, 10_000_000n);

      const client = createSmartAccountClient({
        account,
        chain: stack.anvil.chain,
        bundlerTransport: http(alto.url),
        paymaster: createPaymasterClient({ transport: http(stack.rpcUrl) }),
        paymasterContext: { session },
        userOperation: { estimateFeesPerGas: standardFees },
      });

      // The first op deploys the account; the second runs from it.
      for (const sequence of [0, 1]) {
        const userOpHash = await client.sendUserOperation({ calls: [{ to: TARGET, value: 0n, data: "0x" }] });
        const receipt = await client.waitForUserOperationReceipt({ hash: userOpHash });
        assert.equal(receipt.success, true, `op ${sequence} succeeded`);
        assert.equal(getAddress(receipt.paymaster!), stack.deployment(version).paymaster);
        const [event] = parseEventLogs({ abi: entryPointAbi, logs: receipt.receipt.logs, eventName: "UserOperationEvent" });
        assert.equal(event.args.userOpHash, userOpHash);

        const reservation = (await stack.service.ledger.reservations(account.address)).find((r) => r.nonce === event.args.nonce);
        assert.ok(reservation, `op ${sequence} was reserved for`);
        assert.ok(reservation.ops.some((op) => op.userOpHash === userOpHash), "the reservation records the hash the bundler reports");
      }
      assert.equal(await stack.anvil.publicClient.getBalance({ address: account.address }), 0n, "the account never held ETH");
    });
  });
}
