// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IAggregatorV3
/// @notice The read side of a Chainlink price feed (Chainlink's AggregatorV3Interface, same ABI), as
///         the pricing service calls it. Declared here: the project does not depend on Chainlink's package.
interface IAggregatorV3 {
    /// @notice How many decimals `answer` has (8 for most fiat pairs, 18 for ETH pairs).
    function decimals() external view returns (uint8);

    /// @notice The pair the feed prices, e.g. "ETH / CNY".
    function description() external view returns (string memory);

    /// @notice The aggregator implementation's version.
    function version() external view returns (uint256);

    /// @notice The answer of round `roundId` and when it was reported.
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice The newest round.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}

/// @title MockAggregatorV3
/// @notice TEST AND LOCAL USE ONLY: a Chainlink-compatible price feed whose owner reports any answer
///         with any timestamp, so tests can produce fresh, stale, zero and negative prices at will.
/// @dev Round ids start at 1 and go up by one per report; `answeredInRound` always equals the round
///      id and `startedAt` equals `updatedAt`, as on Chainlink's OCR feeds.
contract MockAggregatorV3 is IAggregatorV3 {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          ERRORS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Only the deployer may report answers.
    error NotOwner();
    /// @dev No round with this id has been reported (Chainlink's feeds revert here too).
    error RoundNotFound(uint80 roundId);

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          STORAGE                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev One reported answer and when it was reported.
    struct Round {
        int256 answer;
        uint256 updatedAt;
    }

    /// @notice The account allowed to report answers: the deployer.
    address public immutable owner;
    /// @inheritdoc IAggregatorV3
    uint8 public immutable override decimals;
    /// @inheritdoc IAggregatorV3
    string public override description;
    /// @dev The newest round's id; 0 before the first report, which the constructor makes.
    uint80 internal _latestRound;
    /// @dev Every reported round by id.
    mapping(uint80 roundId => Round) internal _rounds;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        OPERATIONS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @param decimals_ How many decimals answers have.
    /// @param description_ The pair, e.g. "ETH / CNY".
    /// @param initialAnswer The first round's answer, reported at the deployment block's time.
    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        owner = msg.sender;
        decimals = decimals_;
        description = description_;
        _report(initialAnswer, block.timestamp);
    }

    /// @notice Reports a new round with `answer` as of `updatedAt`, which may be any time (past or future).
    /// @dev Only the owner. The round id goes up by one.
    /// @param answer The price, with `decimals` decimals; zero and negative answers are allowed on purpose.
    /// @param updatedAt The round's timestamp in seconds.
    function setRoundData(int256 answer, uint256 updatedAt) external {
        if (msg.sender != owner) revert NotOwner();
        _report(answer, updatedAt);
    }

    /// @inheritdoc IAggregatorV3
    function version() external pure returns (uint256) {
        return 4;
    }

    /// @inheritdoc IAggregatorV3
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (roundId == 0 || roundId > _latestRound) revert RoundNotFound(roundId);
        return _roundData(roundId);
    }

    /// @inheritdoc IAggregatorV3
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _roundData(_latestRound);
    }

    /// @dev Stores the next round.
    function _report(int256 answer, uint256 updatedAt) internal {
        uint80 roundId = _latestRound + 1;
        _latestRound = roundId;
        _rounds[roundId] = Round(answer, updatedAt);
    }

    /// @dev A stored round in the feed interface's return shape.
    function _roundData(uint80 roundId)
        internal
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage round = _rounds[roundId];
        return (roundId, round.answer, round.updatedAt, round.updatedAt, roundId);
    }
}
