// SPDX-License-Identifier: Apache-2.0
// Test stand-in for Polymarket's UmaCtfAdapter: events declared exactly as in Polymarket/uma-ctf-adapter
// src/interfaces/IUmaCtfAdapter.sol (same topic0s), each emitted on demand. `conditionIdOf` recomputes
// the CTF condition id the real adapter prepares: keccak256(abi.encodePacked(adapter, questionID, 2)).
pragma solidity ^0.8.20;

contract MockUmaCtfAdapter {
    event QuestionInitialized(
        bytes32 indexed questionID,
        uint256 indexed requestTimestamp,
        address indexed creator,
        bytes ancillaryData,
        address rewardToken,
        uint256 reward,
        uint256 proposalBond
    );
    event QuestionPaused(bytes32 indexed questionID);
    event QuestionUnpaused(bytes32 indexed questionID);
    event QuestionFlagged(bytes32 indexed questionID);
    event QuestionReset(bytes32 indexed questionID);
    event QuestionResolved(bytes32 indexed questionID, int256 indexed settledPrice, uint256[] payouts);
    event QuestionManuallyResolved(bytes32 indexed questionID, uint256[] payouts);

    function emitQuestionInitialized(
        bytes calldata ancillaryData,
        uint256 requestTimestamp,
        address rewardToken,
        uint256 reward,
        uint256 proposalBond
    ) external returns (bytes32 questionID) {
        questionID = keccak256(ancillaryData);
        emit QuestionInitialized(questionID, requestTimestamp, msg.sender, ancillaryData, rewardToken, reward, proposalBond);
    }

    function emitQuestionPaused(bytes32 questionID) external {
        emit QuestionPaused(questionID);
    }

    function emitQuestionUnpaused(bytes32 questionID) external {
        emit QuestionUnpaused(questionID);
    }

    function emitQuestionFlagged(bytes32 questionID) external {
        emit QuestionFlagged(questionID);
    }

    function emitQuestionReset(bytes32 questionID) external {
        emit QuestionReset(questionID);
    }

    function emitQuestionResolved(bytes32 questionID, int256 settledPrice, uint256[] calldata payouts) external {
        emit QuestionResolved(questionID, settledPrice, payouts);
    }

    function emitQuestionManuallyResolved(bytes32 questionID, uint256[] calldata payouts) external {
        emit QuestionManuallyResolved(questionID, payouts);
    }

    function conditionIdOf(bytes32 questionID) external view returns (bytes32) {
        return keccak256(abi.encodePacked(address(this), questionID, uint256(2)));
    }
}
