// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts-v8/interfaces/IEntryPoint.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v8/interfaces/PackedUserOperation.sol";
import {FiatGasPaymaster} from "../../contracts/FiatGasPaymaster.sol";
import {vm} from "./utils/Vm.sol";

/// @dev Shared pieces of the paymaster's Solidity tests: an independent EIP-712 encoding, written
///      from the type string rather than from the contract's constants, and op/signature builders.
abstract contract PaymasterTestBase {
    /// @dev A test failed; the reason says which property.
    error AssertionFailed(string reason);

    /// @dev Stands in for the EntryPoint: validation only checks the caller.
    address internal constant ENTRY_POINT = address(0x4337);

    /// @dev The signer key authorised in every test paymaster.
    uint256 internal constant SIGNER_KEY = 0xA11CE;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @dev The signed fields, with initCode already resolved to what the signer approves.
    ///      It lives in memory only, in signing order, so slot packing does not apply.
    // solhint-disable-next-line gas-struct-packing
    struct Fields {
        address sender;
        uint256 nonce;
        bytes initCode;
        bytes callData;
        bytes32 accountGasLimits;
        bytes32 paymasterGasLimits;
        uint256 preVerificationGas;
        bytes32 gasFees;
        uint48 validUntil;
        uint48 validAfter;
    }

    /// @dev Reverts with `reason` unless `condition`.
    function check(bool condition, string memory reason) internal pure {
        if (!condition) revert AssertionFailed(reason);
    }

    /// @dev The EIP-712 digest of `f` for `paymaster`, computed from first principles.
    function expectedDigest(address paymaster, Fields memory f) internal view returns (bytes32) {
        bytes32 domainSeparator = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("FiatGasPaymaster"), keccak256("1"), block.chainid, paymaster)
        );
        bytes32 typeHash = keccak256(
            "Sponsorship(address sender,uint256 nonce,bytes initCode,bytes callData,bytes32 accountGasLimits,"
            "bytes32 paymasterGasLimits,uint256 preVerificationGas,bytes32 gasFees,uint48 validUntil,uint48 validAfter)"
        );
        bytes memory encoded = abi.encode(
            typeHash,
            f.sender,
            f.nonce,
            keccak256(f.initCode),
            keccak256(f.callData),
            f.accountGasLimits,
            f.paymasterGasLimits,
            f.preVerificationGas,
            f.gasFees,
            f.validUntil,
            f.validAfter
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, keccak256(encoded)));
    }

    /// @dev A packed op carrying `f` and paymasterAndData = paymaster ‖ limits ‖ window ‖ `signature`.
    function toUserOp(address paymaster, Fields memory f, bytes memory initCode, bytes memory signature)
        internal
        pure
        returns (PackedUserOperation memory op)
    {
        op.sender = f.sender;
        op.nonce = f.nonce;
        op.initCode = initCode;
        op.callData = f.callData;
        op.accountGasLimits = f.accountGasLimits;
        op.preVerificationGas = f.preVerificationGas;
        op.gasFees = f.gasFees;
        op.paymasterAndData =
            abi.encodePacked(paymaster, f.paymasterGasLimits, f.validUntil, f.validAfter, signature);
        op.signature = hex"5151";
    }

    /// @dev A 65-byte r ‖ s ‖ v signature of `digest` by `key`.
    function signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev Validation data the paymaster returns for `op`, asked as the EntryPoint.
    function validateAsEntryPoint(FiatGasPaymaster paymaster, PackedUserOperation memory op)
        internal
        returns (uint256 validationData)
    {
        vm.prank(ENTRY_POINT);
        (bytes memory context, uint256 data) = paymaster.validatePaymasterUserOp(op, bytes32(0), 0);
        check(context.length == 0, "context must be empty");
        return data;
    }

    /// @dev A paymaster whose only signer is SIGNER_KEY.
    function signersList() internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = vm.addr(SIGNER_KEY);
    }

    /// @dev The EntryPoint stand-in, typed.
    function entryPoint() internal pure returns (IEntryPoint) {
        return IEntryPoint(ENTRY_POINT);
    }
}
