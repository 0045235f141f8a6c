"""Balances to the wei: what an account paid for gas, read from the blocks themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from web3 import Web3


def gas_paid(w3: Web3, address: str, first_block: int) -> int:
    """Wei ``address`` spent on gas in the blocks from ``first_block`` to the head."""
    spent = 0
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"].lower() == address.lower():  # type: ignore[index, union-attr]
                receipt = w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
                spent += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    return spent
