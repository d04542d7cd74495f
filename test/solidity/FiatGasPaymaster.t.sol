// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@account-abstraction/contracts-v8/interfaces/PackedUserOperation.sol";
import {FiatGasPaymaster} from "../../contracts/FiatGasPaymaster.sol";
import {FiatGasPaymasterV7} from "../../contracts/FiatGasPaymasterV7.sol";
import {FiatGasPaymasterV8} from "../../contracts/FiatGasPaymasterV8.sol";
import {PaymasterTestBase} from "./PaymasterTestBase.sol";
import {vm} from "./utils/Vm.sol";

/// @dev Fuzz tests of the hash and of validation-data packing; every fuzz test has a concrete twin.
contract FiatGasPaymasterTest is PaymasterTestBase {
    /// @dev The secp256k1 group order: private keys are in [1, order).
    uint256 internal constant SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    FiatGasPaymasterV7 internal paymasterV7;
    FiatGasPaymasterV8 internal paymasterV8;

    /// @dev Deploys one paymaster per EntryPoint version with SIGNER_KEY as the signer.
    function setUp() public {
        paymasterV7 = new FiatGasPaymasterV7(entryPoint(), address(this), address(this), signersList());
        paymasterV8 = new FiatGasPaymasterV8(entryPoint(), address(this), address(this), signersList());
    }

    /// @dev A fixed set of fields for the concrete twins.
    function sampleFields() internal pure returns (Fields memory f) {
        f.sender = address(0x1234567890AbcdEF1234567890aBcdef12345678);
        f.nonce = (uint256(7) << 64) | 3;
        f.initCode = abi.encodePacked(address(0xFAC7), hex"5fbfb9cf");
        f.callData = hex"b61d27f6000000000000000000000000000000000000000000000000000000000000cc";
        f.accountGasLimits = bytes32((uint256(500_000) << 128) | 100_000);
        f.paymasterGasLimits = bytes32((uint256(60_000) << 128) | 0);
        f.preVerificationGas = 60_000;
        f.gasFees = bytes32((uint256(1 gwei) << 128) | 3 gwei);
        f.validUntil = 1_900_000_000;
        f.validAfter = 1_700_000_000;
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            HASH                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev getHash is the EIP-712 digest of exactly the documented fields, on both versions.
    function assertHashMatches(Fields memory f) internal view {
        PackedUserOperation memory op = toUserOp(address(0), f, f.initCode, new bytes(65));
        check(paymasterV7.getHash(op, f.validUntil, f.validAfter) == expectedDigest(address(paymasterV7), f), "v0.7");
        check(paymasterV8.getHash(op, f.validUntil, f.validAfter) == expectedDigest(address(paymasterV8), f), "v0.8");
    }

    function test_GetHashIsTheEip712DigestOfTheSignedFields() public view {
        assertHashMatches(sampleFields());
    }

    function testFuzz_GetHashIsTheEip712DigestOfTheSignedFields(Fields memory f) public view {
        // A 7702 marker gets its own test: it needs a delegated sender.
        vm.assume(f.initCode.length < 20 || bytes20(f.initCode) != bytes20(bytes2(0x7702)));
        assertHashMatches(f);
    }

    /// @dev Changing field `index` of `f` (by xor with a non-zero `delta`) must change the digest.
    function assertFieldIsCovered(Fields memory f, uint256 index, uint256 delta) internal view {
        PackedUserOperation memory op = toUserOp(address(0), f, f.initCode, new bytes(65));
        bytes32 original = paymasterV7.getHash(op, f.validUntil, f.validAfter);
        Fields memory g = mutate(f, index % 12, delta);
        PackedUserOperation memory changed = toUserOp(address(0), g, g.initCode, new bytes(65));
        check(paymasterV7.getHash(changed, g.validUntil, g.validAfter) != original, "a covered field is not signed");
    }

    /// @dev Copies `f` with one field changed: 0..9 the fields, 10 a byte appended to initCode, 11 to callData.
    function mutate(Fields memory f, uint256 index, uint256 delta) internal pure returns (Fields memory g) {
        g = Fields(f.sender, f.nonce, f.initCode, f.callData, f.accountGasLimits, f.paymasterGasLimits,
            f.preVerificationGas, f.gasFees, f.validUntil, f.validAfter);
        if (index == 0) g.sender = address(uint160(f.sender) ^ uint160(delta | 1));
        else if (index == 1) g.nonce = f.nonce ^ delta;
        else if (index == 2) g.initCode = abi.encodePacked(f.initCode, uint8(delta));
        else if (index == 3) g.callData = abi.encodePacked(uint8(delta), f.callData);
        else if (index == 4) g.accountGasLimits = f.accountGasLimits ^ bytes32(delta);
        else if (index == 5) g.paymasterGasLimits = f.paymasterGasLimits ^ bytes32(delta);
        else if (index == 6) g.preVerificationGas = f.preVerificationGas ^ delta;
        else if (index == 7) g.gasFees = f.gasFees ^ bytes32(delta);
        else if (index == 8) g.validUntil = f.validUntil ^ uint48(delta | 1);
        else if (index == 9) g.validAfter = f.validAfter ^ uint48(delta | 1);
        else if (index == 10) g.initCode = bytes.concat(f.initCode, hex"00");
        else g.callData = bytes.concat(f.callData, hex"00");
    }

    function test_EveryCoveredFieldChangesTheHash() public view {
        for (uint256 index; index < 12; ++index) {
            assertFieldIsCovered(sampleFields(), index, 1);
        }
    }

    function testFuzz_EveryCoveredFieldChangesTheHash(Fields memory f, uint256 index, uint256 delta) public view {
        vm.assume(delta != 0);
        vm.assume(f.initCode.length < 20 || bytes20(f.initCode) != bytes20(bytes2(0x7702)));
        assertFieldIsCovered(f, index, delta);
    }

    /// @dev A 7702 account is signed with its delegate in place of the marker, as the v0.8 EntryPoint hashes it.
    function assert7702DelegateIsBound(address sender, address delegate, bytes memory tail) internal {
        vm.etch(sender, abi.encodePacked(hex"ef0100", delegate));
        Fields memory f = sampleFields();
        f.sender = sender;
        bytes memory marker = abi.encodePacked(bytes20(bytes2(0x7702)), tail);
        f.initCode = abi.encodePacked(delegate, tail);
        PackedUserOperation memory op = toUserOp(address(0), f, marker, new bytes(65));
        bytes32 digest = paymasterV8.getHash(op, f.validUntil, f.validAfter);
        check(digest == expectedDigest(address(paymasterV8), f), "the delegate replaces the marker");

        vm.etch(sender, abi.encodePacked(hex"ef0100", address(uint160(delegate) ^ 1)));
        check(paymasterV8.getHash(op, f.validUntil, f.validAfter) != digest, "re-delegating voids the signature");
    }

    function test_V8BindsThe7702Delegate() public {
        assert7702DelegateIsBound(address(0x7702aCC), address(0xDE1E6A7E), hex"c0ffee");
        assert7702DelegateIsBound(address(0x7702aCC), address(0xDE1E6A7E), "");
    }

    function testFuzz_V8BindsThe7702Delegate(uint160 senderSeed, address delegate, bytes memory tail) public {
        address sender = address(uint160(0x10000) + (senderSeed % type(uint128).max));
        assert7702DelegateIsBound(sender, delegate, tail);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                   VALIDATION-DATA PACKING                  */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev The window is packed as the EntryPoint expects, and the failure bit is set iff the key is not a signer.
    function assertPacking(FiatGasPaymaster paymaster, uint48 validUntil, uint48 validAfter, uint256 key)
        internal
    {
        Fields memory f = sampleFields();
        f.validUntil = validUntil;
        f.validAfter = validAfter;
        bytes memory signature = signDigest(key, expectedDigest(address(paymaster), f));
        uint256 data = validateAsEntryPoint(paymaster, toUserOp(address(paymaster), f, f.initCode, signature));
        uint256 failed = key == SIGNER_KEY ? 0 : 1;
        check(data == (failed | (uint256(validUntil) << 160) | (uint256(validAfter) << 208)), "packed data");
    }

    function test_PacksTheWindowAndSuccess() public {
        assertPacking(paymasterV7, 1_900_000_000, 1_700_000_000, SIGNER_KEY);
        assertPacking(paymasterV8, type(uint48).max, 0, SIGNER_KEY);
    }

    function test_PacksTheFailureBitForAnUnknownSigner() public {
        assertPacking(paymasterV7, 1_900_000_000, 1_700_000_000, 0xB0B);
        assertPacking(paymasterV8, 0, type(uint48).max, 0xB0B);
    }

    function testFuzz_PacksTheWindowAndTheFailureBit(uint48 validUntil, uint48 validAfter, uint256 key, bool v8)
        public
    {
        // Any valid secp256k1 private key, sometimes the real signer.
        key = key % 4 == 0 ? SIGNER_KEY : 1 + (key % (SECP256K1_ORDER - 1));
        assertPacking(v8 ? FiatGasPaymaster(paymasterV8) : FiatGasPaymaster(paymasterV7), validUntil, validAfter, key);
    }

    /// @dev Any paymasterAndData length but 129 reverts with the length.
    function assertMalformedReverts(uint256 length) internal {
        Fields memory f = sampleFields();
        PackedUserOperation memory op = toUserOp(address(paymasterV7), f, f.initCode, new bytes(65));
        bytes memory data = new bytes(length);
        for (uint256 i; i < length && i < op.paymasterAndData.length; ++i) {
            data[i] = op.paymasterAndData[i];
        }
        op.paymasterAndData = data;
        vm.expectRevert(abi.encodeWithSelector(FiatGasPaymaster.InvalidPaymasterDataLength.selector, length));
        vm.prank(ENTRY_POINT);
        paymasterV7.validatePaymasterUserOp(op, bytes32(0), 0);
    }

    function test_RevertWhen_PaymasterDataIsOneByteShort() public {
        assertMalformedReverts(128);
    }

    function testFuzz_RevertWhen_PaymasterDataLengthIsWrong(uint16 seed) public {
        uint256 length = seed % 1024;
        vm.assume(length != 129);
        assertMalformedReverts(length);
    }

    function test_RevertWhen_NotCalledByTheEntryPoint() public {
        Fields memory f = sampleFields();
        PackedUserOperation memory op = toUserOp(address(paymasterV7), f, f.initCode, new bytes(65));
        vm.expectRevert(abi.encodeWithSelector(FiatGasPaymaster.NotFromEntryPoint.selector));
        paymasterV7.validatePaymasterUserOp(op, bytes32(0), 0);
    }
}
