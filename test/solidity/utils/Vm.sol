// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @dev The cheatcodes these tests use. Hardhat's EDR implements them at the conventional address,
///      so no forge-std is needed (its npm copy is unusable). Named `Vm` as every cheatcode user expects.
// solhint-disable-next-line interface-starts-with-i
interface Vm {
    /// @dev Signs `digest` with `privateKey`.
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    /// @dev The address of `privateKey`.
    function addr(uint256 privateKey) external pure returns (address);
    /// @dev Makes the next call come from `sender`.
    function prank(address sender) external;
    /// @dev Discards the fuzz run unless `condition` holds.
    function assume(bool condition) external pure;
    /// @dev Expects the next call to revert with exactly `revertData`.
    function expectRevert(bytes calldata revertData) external;
    /// @dev Sets the code at `target`.
    function etch(address target, bytes calldata code) external;
}

/// @dev The cheatcode address: address(uint160(uint256(keccak256("hevm cheat code")))).
Vm constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
