// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts-v8/interfaces/IEntryPoint.sol";
import {IPaymaster} from "@account-abstraction/contracts-v8/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts-v8/interfaces/PackedUserOperation.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/// @title FiatGasPaymaster
/// @notice Sponsors a UserOperation when one of the authorised off-chain signers has signed it.
///         The off-chain service charges the account's fiat balance; on chain this contract only
///         checks the signature, so validation stays small and follows the staked-paymaster rules
///         of ERC-7562 (it reads one slot of its own storage: the signer set).
/// @dev `paymasterAndData` layout (129 bytes, anything else reverts):
///
///      | offset | length | field                          |
///      |--------|--------|--------------------------------|
///      | 0      | 20     | paymaster address              |
///      | 20     | 16     | paymasterVerificationGasLimit  |
///      | 36     | 16     | paymasterPostOpGasLimit        |
///      | 52     | 6      | validUntil (uint48, 0 = never) |
///      | 58     | 6      | validAfter (uint48)            |
///      | 64     | 65     | signature: r, s, v             |
///
///      The signature is EIP-712 typed data over every UserOperation field the EntryPoint passes,
///      except the account's own signature and the paymaster signature itself (see SPONSORSHIP_TYPEHASH).
abstract contract FiatGasPaymaster is IPaymaster, Ownable2Step, EIP712 {
    using EnumerableSet for EnumerableSet.AddressSet;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          ERRORS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev A call that only the EntryPoint may make came from elsewhere.
    error NotFromEntryPoint();
    /// @dev The caller is neither the manager nor the owner.
    error NotManager();
    /// @dev `paymasterAndData` is not exactly PAYMASTER_AND_DATA_LENGTH bytes.
    error InvalidPaymasterDataLength(uint256 length);
    /// @dev The EntryPoint never calls postOp for an empty context; reaching it is a bug.
    error PostOpNotSupported();
    /// @dev The zero address cannot be a signer, manager, or EntryPoint.
    error ZeroAddress();
    /// @dev The signer is already in the set.
    error SignerAlreadyAdded(address signer);
    /// @dev The signer is not in the set.
    error SignerNotFound(address signer);
    /// @dev Ownership can only be handed over, never renounced: the deposit would be stranded.
    error RenounceDisabled();

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          EVENTS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice `signer` may now sign sponsorships.
    event SignerAdded(address indexed signer, address indexed by);
    /// @notice `signer` may no longer sign sponsorships; its unexpired signatures stop working at once.
    event SignerRemoved(address indexed signer, address indexed by);
    /// @notice The manager role moved from `previousManager` to `newManager`.
    event ManagerChanged(address indexed previousManager, address indexed newManager);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTANTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev EIP-712 type of what a signer approves. `initCode` is the effective initCode: on
    ///      EntryPoint v0.8 an EIP-7702 marker is replaced by the account's delegate (see _initCodeHash).
    ///      `paymasterGasLimits` is paymasterAndData[20:52], both paymaster gas limits.
    bytes32 public constant SPONSORSHIP_TYPEHASH = keccak256(
        "Sponsorship(address sender,uint256 nonce,bytes initCode,bytes callData,bytes32 accountGasLimits,"
        "bytes32 paymasterGasLimits,uint256 preVerificationGas,bytes32 gasFees,uint48 validUntil,uint48 validAfter)"
    );

    /// @dev Offset of validUntil in paymasterAndData (the EntryPoint's PAYMASTER_DATA_OFFSET).
    uint256 internal constant VALID_UNTIL_OFFSET = 52;
    /// @dev Offset of validAfter in paymasterAndData.
    uint256 internal constant VALID_AFTER_OFFSET = 58;
    /// @dev Offset of the 65-byte signature in paymasterAndData.
    uint256 internal constant SIGNATURE_OFFSET = 64;
    /// @dev The only accepted length of paymasterAndData.
    uint256 public constant PAYMASTER_AND_DATA_LENGTH = 129;

    /// @dev Validation data bit that tells the EntryPoint the signature failed (AA34).
    uint256 internal constant SIG_VALIDATION_FAILED = 1;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice The EntryPoint this paymaster serves.
    IEntryPoint public immutable entryPoint;

    /// @notice Who may rotate signers besides the owner.
    address public manager;

    /// @dev Authorised signers. Validation reads one slot of it: `_positions[recovered]`.
    EnumerableSet.AddressSet internal _signers;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        CONSTRUCTOR                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @param entryPoint_ The EntryPoint (v0.7 or v0.8, matching the concrete contract).
    /// @param owner_ Holds the deposit and stake: the only one who can withdraw.
    /// @param manager_ May add and remove signers.
    /// @param signers_ The initial signer set.
    constructor(IEntryPoint entryPoint_, address owner_, address manager_, address[] memory signers_)
        Ownable(owner_)
        EIP712("FiatGasPaymaster", "1")
    {
        if (address(entryPoint_) == address(0) || manager_ == address(0)) revert ZeroAddress();
        entryPoint = entryPoint_;
        manager = manager_;
        emit ManagerChanged(address(0), manager_);
        for (uint256 i; i < signers_.length; ++i) {
            _addSigner(signers_[i]);
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         VALIDATION                         */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Called by the EntryPoint to ask whether this paymaster pays for `userOp`.
    /// @dev A wrong or unknown signer returns the failure bit (AA34) and an out-of-window time is
    ///      reported through the packed validity window (AA32); neither reverts. Only a malformed
    ///      paymasterAndData reverts. The context is empty, so the EntryPoint skips postOp.
    /// @return context Always empty.
    /// @return validationData `sigFailed | validUntil << 160 | validAfter << 208`.
    function validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32, uint256)
        external
        view
        returns (bytes memory context, uint256 validationData)
    {
        if (msg.sender != address(entryPoint)) revert NotFromEntryPoint();
        bytes calldata paymasterAndData = userOp.paymasterAndData;
        if (paymasterAndData.length != PAYMASTER_AND_DATA_LENGTH) {
            revert InvalidPaymasterDataLength(paymasterAndData.length);
        }
        uint48 validUntil;
        uint48 validAfter;
        bytes32 r;
        bytes32 s;
        uint8 v;
        // The length is checked above, so these reads stay inside paymasterAndData.
        assembly ("memory-safe") {
            let data := paymasterAndData.offset
            // Two 6-byte big-endian timestamps: the top 48 bits of the word at each offset.
            validUntil := shr(208, calldataload(add(data, VALID_UNTIL_OFFSET)))
            validAfter := shr(208, calldataload(add(data, VALID_AFTER_OFFSET)))
            r := calldataload(add(data, SIGNATURE_OFFSET))
            s := calldataload(add(data, add(SIGNATURE_OFFSET, 32)))
            v := byte(0, calldataload(add(data, add(SIGNATURE_OFFSET, 64))))
        }

        (address recovered,,) = ECDSA.tryRecover(getHash(userOp, validUntil, validAfter), v, r, s);
        bool sigFailed = !_signers.contains(recovered);
        validationData = (sigFailed ? SIG_VALIDATION_FAILED : 0) | (uint256(validUntil) << 160)
            | (uint256(validAfter) << 208);
        return ("", validationData);
    }

    /// @notice Never called: validation returns an empty context.
    function postOp(PostOpMode, bytes calldata, uint256, uint256) external pure {
        revert PostOpNotSupported();
    }

    /// @notice The EIP-712 digest a signer signs to sponsor `userOp` within the given window.
    /// @dev The off-chain encoder is tested against this function. paymasterAndData[52:] is not
    ///      read, so the digest can be computed before the signature exists.
    function getHash(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        public
        view
        returns (bytes32)
    {
        bytes32 initCodeHash = _initCodeHash(userOp);
        bytes32 callDataHash = keccak256(userOp.callData);
        address sender = userOp.sender;
        uint256 nonce = userOp.nonce;
        bytes32 accountGasLimits = userOp.accountGasLimits;
        uint256 preVerificationGas = userOp.preVerificationGas;
        bytes32 gasFees = userOp.gasFees;
        bytes calldata paymasterAndData = userOp.paymasterAndData;
        if (paymasterAndData.length < VALID_UNTIL_OFFSET) revert InvalidPaymasterDataLength(paymasterAndData.length);
        bytes32 typeHash = SPONSORSHIP_TYPEHASH;
        bytes32 structHash;
        // hashStruct(Sponsorship): the eleven words hashed in place at the free memory pointer,
        // which is left where it was since nothing else uses that memory.
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            mstore(add(m, 0x20), sender)
            mstore(add(m, 0x40), nonce)
            mstore(add(m, 0x60), initCodeHash)
            mstore(add(m, 0x80), callDataHash)
            mstore(add(m, 0xa0), accountGasLimits)
            // paymasterAndData[20:52]: both paymaster gas limits.
            mstore(add(m, 0xc0), calldataload(add(paymasterAndData.offset, 20)))
            mstore(add(m, 0xe0), preVerificationGas)
            mstore(add(m, 0x100), gasFees)
            mstore(add(m, 0x120), validUntil)
            mstore(add(m, 0x140), validAfter)
            structHash := keccak256(m, 0x160)
        }
        return _hashTypedDataV4(structHash);
    }

    /// @dev keccak256 of the initCode as the signer saw it; the v0.8 adapter binds the 7702 delegate.
    function _initCodeHash(PackedUserOperation calldata userOp) internal view virtual returns (bytes32);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          SIGNERS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Guards the signer rotation functions.
    modifier onlyManagerOrOwner() {
        if (msg.sender != manager && msg.sender != owner()) revert NotManager();
        _;
    }

    /// @notice Authorises `signer`. Add the new key before removing the old one to rotate with no downtime.
    function addSigner(address signer) external onlyManagerOrOwner {
        _addSigner(signer);
    }

    /// @notice Revokes `signer`; operations it signed stop validating immediately.
    function removeSigner(address signer) external onlyManagerOrOwner {
        if (!_signers.remove(signer)) revert SignerNotFound(signer);
        emit SignerRemoved(signer, msg.sender);
    }

    /// @notice Whether `signer` is authorised.
    function isSigner(address signer) external view returns (bool) {
        return _signers.contains(signer);
    }

    /// @notice All authorised signers.
    function signers() external view returns (address[] memory) {
        return _signers.values();
    }

    /// @notice Moves the manager role.
    function setManager(address newManager) external onlyOwner {
        if (newManager == address(0)) revert ZeroAddress();
        emit ManagerChanged(manager, newManager);
        manager = newManager;
    }

    /// @dev Adds `signer`, rejecting zero and duplicates.
    function _addSigner(address signer) private {
        if (signer == address(0)) revert ZeroAddress();
        if (!_signers.add(signer)) revert SignerAlreadyAdded(signer);
        emit SignerAdded(signer, msg.sender);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     DEPOSIT AND STAKE                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Adds `msg.value` to this paymaster's EntryPoint deposit. Anyone may fund it.
    function deposit() external payable {
        entryPoint.depositTo{value: msg.value}(address(this));
    }

    /// @notice This paymaster's EntryPoint deposit, in wei.
    function getDeposit() external view returns (uint256) {
        return entryPoint.balanceOf(address(this));
    }

    /// @notice Withdraws `amount` wei of the deposit to `to`.
    function withdrawTo(address payable to, uint256 amount) external onlyOwner {
        entryPoint.withdrawTo(to, amount);
    }

    /// @notice Stakes `msg.value` (staking is required: validation reads the signer set).
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        entryPoint.addStake{value: msg.value}(unstakeDelaySec);
    }

    /// @notice Starts the unstake delay; the paymaster stops being treated as staked.
    function unlockStake() external onlyOwner {
        entryPoint.unlockStake();
    }

    /// @notice Withdraws the whole stake to `to` once the unstake delay has passed.
    function withdrawStake(address payable to) external onlyOwner {
        entryPoint.withdrawStake(to);
    }

    /// @notice Disabled: a paymaster without an owner could never withdraw its deposit.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }
}
