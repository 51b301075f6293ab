// SPDX-License-Identifier: Apache-2.0
// Test stand-in for UMA's OptimisticOracleV2 / Managed OOv2 on Polygon: the four events are declared
// exactly as in UMAprotocol/protocol OptimisticOracleV2Interface.sol (same names, types, indexed flags,
// so the same topic0s), and each can be emitted on demand. No oracle logic: tests drive the log stream.
pragma solidity ^0.8.20;

contract MockOptimisticOracleV2 {
    event RequestPrice(
        address indexed requester,
        bytes32 identifier,
        uint256 timestamp,
        bytes ancillaryData,
        address currency,
        uint256 reward,
        uint256 finalFee
    );
    event ProposePrice(
        address indexed requester,
        address indexed proposer,
        bytes32 identifier,
        uint256 timestamp,
        bytes ancillaryData,
        int256 proposedPrice,
        uint256 expirationTimestamp,
        address currency
    );
    event DisputePrice(
        address indexed requester,
        address indexed proposer,
        address indexed disputer,
        bytes32 identifier,
        uint256 timestamp,
        bytes ancillaryData,
        int256 proposedPrice
    );
    event Settle(
        address indexed requester,
        address indexed proposer,
        address indexed disputer,
        bytes32 identifier,
        uint256 timestamp,
        bytes ancillaryData,
        int256 price,
        uint256 payout
    );

    function emitRequestPrice(
        address requester,
        bytes32 identifier,
        uint256 timestamp,
        bytes calldata ancillaryData,
        address currency,
        uint256 reward,
        uint256 finalFee
    ) external {
        emit RequestPrice(requester, identifier, timestamp, ancillaryData, currency, reward, finalFee);
    }

    function emitProposePrice(
        address requester,
        address proposer,
        bytes32 identifier,
        uint256 timestamp,
        bytes calldata ancillaryData,
        int256 proposedPrice,
        uint256 expirationTimestamp,
        address currency
    ) external {
        emit ProposePrice(
            requester, proposer, identifier, timestamp, ancillaryData, proposedPrice, expirationTimestamp, currency
        );
    }

    function emitDisputePrice(
        address requester,
        address proposer,
        address disputer,
        bytes32 identifier,
        uint256 timestamp,
        bytes calldata ancillaryData,
        int256 proposedPrice
    ) external {
        emit DisputePrice(requester, proposer, disputer, identifier, timestamp, ancillaryData, proposedPrice);
    }

    function emitSettle(
        address requester,
        address proposer,
        address disputer,
        bytes32 identifier,
        uint256 timestamp,
        bytes calldata ancillaryData,
        int256 price,
        uint256 payout
    ) external {
        emit Settle(requester, proposer, disputer, identifier, timestamp, ancillaryData, price, payout);
    }
}
