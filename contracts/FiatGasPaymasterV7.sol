// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts-v8/interfaces/IEntryPoint.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v8/interfaces/PackedUserOperation.sol";
import {FiatGasPaymaster} from "./FiatGasPaymaster.sol";

/// @title FiatGasPaymasterV7
/// @notice FiatGasPaymaster for EntryPoint v0.7, where initCode is always a factory call.
contract FiatGasPaymasterV7 is FiatGasPaymaster {
    /// @param entryPoint_ EntryPoint v0.7 (canonically 0x0000000071727De22E5E9d8BAf0edAc6f37da032).
    /// @param owner_ Holds the deposit and stake.
    /// @param manager_ May rotate signers.
    /// @param signers_ The initial signer set.
    constructor(IEntryPoint entryPoint_, address owner_, address manager_, address[] memory signers_)
        FiatGasPaymaster(entryPoint_, owner_, manager_, signers_)
    {}

    /// @dev v0.7 gives no meaning to a 7702 marker, so the raw initCode is what was signed.
    function _initCodeHash(PackedUserOperation calldata userOp) internal pure override returns (bytes32) {
        return keccak256(userOp.initCode);
    }
}
