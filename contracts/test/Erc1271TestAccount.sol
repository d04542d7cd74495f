// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/**
 * @title Erc1271TestAccount
 * @notice TEST ONLY, never deploy: the smallest account that answers ERC-1271 for its owner's
 *         ECDSA signature. None of the installed packages ships a factory-made ERC-1271 account,
 *         and the service's sign-in must be tested against one that is not deployed yet (ERC-6492).
 */
contract Erc1271TestAccount is IERC1271 {
    /// @dev The only key whose signatures the account accepts.
    address public immutable owner;

    /// @param owner_ The key whose signatures the account accepts.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @inheritdoc IERC1271
    /// @dev A malformed signature is a failed check, not a revert, as ERC-1271 expects.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(hash, signature);
        bool valid = error == ECDSA.RecoverError.NoError && signer == owner;
        return valid ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }
}

/**
 * @title Erc1271TestAccountFactory
 * @notice TEST ONLY, never deploy: CREATE2 factory of Erc1271TestAccount, with the
 *         createAccount(owner, salt) / getAddress(owner, salt) shape of SimpleAccountFactory.
 */
contract Erc1271TestAccountFactory {
    /// @notice Deploys the account of `owner` and `salt`, or returns it if it exists.
    /// @param owner The account's signing key.
    /// @param salt Distinguishes several accounts of one owner.
    /// @return account The account's address.
    function createAccount(address owner, uint256 salt) external returns (address account) {
        account = getAddress(owner, salt);
        if (account.code.length == 0) new Erc1271TestAccount{salt: bytes32(salt)}(owner);
    }

    /// @notice The counterfactual address of the account of `owner` and `salt`.
    /// @param owner The account's signing key.
    /// @param salt Distinguishes several accounts of one owner.
    /// @return The address createAccount deploys to.
    function getAddress(address owner, uint256 salt) public view returns (address) {
        bytes32 initCodeHash = keccak256(abi.encodePacked(type(Erc1271TestAccount).creationCode, abi.encode(owner)));
        return Create2.computeAddress(bytes32(salt), initCodeHash);
    }
}
