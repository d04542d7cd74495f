// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Eip7702Support} from "@account-abstraction/contracts-v8/core/Eip7702Support.sol";
import {IEntryPoint} from "@account-abstraction/contracts-v8/interfaces/IEntryPoint.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v8/interfaces/PackedUserOperation.sol";
import {FiatGasPaymaster} from "./FiatGasPaymaster.sol";

/// @title FiatGasPaymasterV8
/// @notice FiatGasPaymaster for EntryPoint v0.8, which accepts EIP-7702 accounts.
/// @dev For a 7702 account the initCode starts with the `0x7702` marker instead of a factory. The
///      signature then binds the delegate the account points to, exactly as the EntryPoint's own
///      userOpHash does, so a signature cannot be reused after the account re-delegates.
contract FiatGasPaymasterV8 is FiatGasPaymaster {
    /// @param entryPoint_ EntryPoint v0.8 (canonically 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108).
    /// @param owner_ Holds the deposit and stake.
    /// @param manager_ May rotate signers.
    /// @param signers_ The initial signer set.
    constructor(IEntryPoint entryPoint_, address owner_, address manager_, address[] memory signers_)
        FiatGasPaymaster(entryPoint_, owner_, manager_, signers_)
    {}

    /// @dev keccak256(delegate ‖ initCode[20:]) for a 7702 initCode, else keccak256(initCode).
    function _initCodeHash(PackedUserOperation calldata userOp) internal view override returns (bytes32) {
        bytes calldata initCode = userOp.initCode;
        if (!Eip7702Support._isEip7702InitCode(initCode)) return keccak256(initCode);
        address delegate = Eip7702Support._getEip7702Delegate(userOp.sender);
        if (initCode.length <= 20) return keccak256(abi.encodePacked(delegate));
        return keccak256(abi.encodePacked(delegate, initCode[20:]));
    }
}
