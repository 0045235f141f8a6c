"""Sending transactions: per-account nonces shared by processes, gas estimation, retries, receipts,
and reverts decoded into the contract's custom error names with a sentence a person can act on."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Wei

from blindframe.coordinator.chain import TRANSIENT_ERRORS, with_retries
from blindframe.coordinator.errors import ContractRevertError, TransactionError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from hexbytes import HexBytes
    from web3 import Web3
    from web3.contract.contract import ContractFunction
    from web3.types import TxParams, TxReceipt

__all__ = ["ErrorDecoder", "TxSender"]

_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
_PANIC = function_signature_to_4byte_selector("Panic(uint256)")
_PANIC_REASONS = {
    0x01: "an assertion failed",
    0x11: "an arithmetic operation overflowed",
    0x12: "division by zero",
    0x21: "an invalid enum value",
    0x32: "an array index out of bounds",
    0x41: "too much memory allocated",
}


def _abi_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@dataclass
class ErrorDecoder:
    """Custom errors of some ABIs by selector, with optional sentences per error name.

    A sentence is a ``str.format`` template over the error's argument names, e.g.
    ``"lease {leaseId} expired at {deadline} (now {now})"``.
    """

    abis: Sequence[Sequence[Mapping[str, Any]]]
    sentences: Mapping[str, str] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in self.abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item.get("inputs", [])]
                names = [
                    str(i.get("name") or f"arg{n}") for n, i in enumerate(item.get("inputs", []))
                ]
                selector = function_signature_to_4byte_selector(
                    f"{item['name']}({','.join(types)})"
                )
                self._errors[selector] = (str(item["name"]), names, types)

    def decode(self, data: bytes) -> tuple[str, dict[str, object]] | None:
        """(error name, arguments) of revert data, or None when unknown."""
        selector, payload = data[:4], data[4:]
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], payload)
            return "Error", {"reason": reason}
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], payload)
            return "Panic", {"code": code, "reason": _PANIC_REASONS.get(code, "a panic")}
        known = self._errors.get(selector)
        if known is None:
            return None
        name, names, types = known
        try:
            values = abi_decode(types, payload)
        except Exception:  # noqa: BLE001 - malformed payload: report the name alone
            return name, {}
        args = {
            n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, values, strict=True)
        }
        return name, args

    def error(self, data: bytes, *, action: str) -> ContractRevertError:
        """A ContractRevertError for revert ``data`` met while trying ``action``."""
        decoded = self.decode(data)
        if decoded is None:
            return ContractRevertError(
                f"the contract rejected {action} with unknown revert data 0x{data.hex()[:80]}"
            )
        name, args = decoded
        if name == "Error":
            return ContractRevertError(
                f"the contract rejected {action}: {args['reason']}", name=name, args=args
            )
        if name == "Panic":
            return ContractRevertError(
                f"the contract failed during {action}: {args['reason']}", name=name, args=args
            )
        template = self.sentences.get(name)
        detail = ", ".join(f"{k}={v}" for k, v in args.items())
        sentence = template.format(**args) if template else f"{name}({detail})"
        return ContractRevertError(
            f"the contract rejected {action}: {sentence}" + (f" [{name}]" if template else ""),
            name=name,
            args=args,
            hint=self.hints.get(name),
        )


def _revert_data(exc: BaseException) -> bytes | None:
    data: object = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


class TxSender:
    """Signs and sends transactions for one account.

    Nonces: several processes may send for the same account (a worker's claim loop and its
    ``withdraw`` command, say). Each send takes an exclusive file lock per account, reads the
    node's pending nonce, signs and submits, and releases the lock only once the node holds the
    transaction, so the next sender sees the next nonce.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        endpoint: str,
        decoder: ErrorDecoder | None = None,
        lock_dir: Path | None = None,
        gas_margin: float = 1.25,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = to_checksum_address(account.address)
        self.endpoint = endpoint
        self.decoder = decoder or ErrorDecoder(abis=[])
        self.lock_dir = lock_dir
        self.gas_margin = gas_margin
        self.receipt_timeout = receipt_timeout

    # -- public ---------------------------------------------------------------------------------

    def transact(
        self, function: ContractFunction, *, value: int = 0, action: str | None = None
    ) -> TxReceipt:
        """Call a contract function in a transaction; ContractRevertError if it would revert."""
        what = action or f"{function.fn_name}()"
        # A placeholder gas limit stops build_transaction from estimating against the latest
        # block; _send estimates against the pending one (see there).
        base: TxParams = {"from": self.address, "value": Wei(value), "gas": 0}
        try:
            tx: TxParams = function.build_transaction(base)
        except ContractLogicError as exc:
            raise self._revert(exc, what) from None
        return self._send(tx, what)

    def deploy(
        self, abi: list[dict[str, Any]], bytecode: str, *args: Any, value: int = 0
    ) -> tuple[str, TxReceipt]:
        """Deploy a contract; returns (address, receipt)."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        try:
            tx: TxParams = factory.constructor(*args).build_transaction(
                {"from": self.address, "value": value}
            )
        except ContractLogicError as exc:
            raise self._revert(exc, "deploying the contract") from None
        receipt = self._send(tx, "deploying the contract")
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionError("the deployment receipt has no contract address")
        return to_checksum_address(address), receipt

    @staticmethod
    def revert_error(decoder: ErrorDecoder, exc: BaseException, action: str) -> ContractRevertError:
        """Decode a revert raised by a read-only ``call()``."""
        data = _revert_data(exc)
        if data:
            return decoder.error(data, action=action)
        message = getattr(exc, "message", None) or str(exc)
        return ContractRevertError(f"the contract rejected {action}: {message}")

    # -- internal -------------------------------------------------------------------------------

    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        return with_retries(call, what=what, endpoint=self.endpoint)

    def _revert(self, exc: BaseException, action: str) -> ContractRevertError:
        return self.revert_error(self.decoder, exc, action)

    def _send(self, params: TxParams, action: str) -> TxReceipt:
        tx: dict[str, Any] = dict(params)
        tx.pop("nonce", None)
        tx.pop("gas", None)
        # Estimate against the pending block: its timestamp is the next block's, while the latest
        # block of an idle chain (Anvil mines on demand) can be minutes old, and a deadline check
        # would then fail the estimate of a transaction that would succeed (a reveal after the
        # commit deadline, a finalize after the acceptance window, a reclaim).
        try:
            gas = self._retry(
                lambda: self.w3.eth.estimate_gas(cast("TxParams", tx), "pending"),
                f"estimate gas for {action}",
            )
        except ContractLogicError as exc:
            raise self._revert(exc, action) from None
        except Web3RPCError as exc:
            raise self._rpc_error(exc, action) from None
        tx["gas"] = int(gas * self.gas_margin)
        tx.update(self._fees())
        tx["chainId"] = self._retry(lambda: self.w3.eth.chain_id, "read the chain id")
        with self._nonce_lock():
            tx["nonce"] = self._retry(
                lambda: self.w3.eth.get_transaction_count(self.address, "pending"), "read the nonce"
            )
            signed = self.account.sign_transaction(tx)
            tx_hash = signed.hash
            try:
                self._retry(lambda: self._submit(signed.raw_transaction), f"send {action}")
            except Web3RPCError as exc:
                raise self._rpc_error(exc, action) from None
        receipt = self._receipt(tx_hash, action)
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt, action)
        return receipt

    def _receipt(self, tx_hash: HexBytes, action: str) -> TxReceipt:
        """The mined transaction's receipt, waited for up to ``receipt_timeout``. The RPC going
        away meanwhile is waited out too: the transaction is sent, and a caller that saw an
        error here would send it again (a second claim, a second payment)."""
        deadline = time.monotonic() + self.receipt_timeout
        unreachable: BaseException | None = None
        while True:
            left = deadline - time.monotonic()
            try:
                receipt: TxReceipt = self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=max(left, 0.1), poll_latency=0.2
                )
                return receipt
            except TimeExhausted:
                unreachable = None
            except TRANSIENT_ERRORS as exc:
                unreachable = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        seen = (
            f"the RPC at {self.endpoint} stopped answering ({type(unreachable).__name__})"
            if unreachable is not None
            else "it was not mined"
        )
        raise TransactionError(
            f"{action} was sent (0x{bytes(tx_hash).hex()}) but {seen} "
            f"within {self.receipt_timeout:.0f} s",
            hint="check the transaction later before resending",
        )

    def _submit(self, raw: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            # A retried submission the node already holds is a success.
            if "already known" in str(exc).lower():
                return
            raise

    def max_fee(self, gas: int) -> int:
        """The most wei a transaction estimated at ``gas`` may cost, as ``send`` would price it
        now: its gas limit (the estimate times the margin) times its highest price per gas."""
        fees = self._fees()
        return int(gas * self.gas_margin) * fees.get("maxFeePerGas", fees.get("gasPrice", 0))

    def _fees(self) -> dict[str, int]:
        block = self._retry(lambda: self.w3.eth.get_block("latest"), "read the latest block")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {
                "gasPrice": int(self._retry(lambda: self.w3.eth.gas_price, "read the gas price"))
            }
        priority = int(self._retry(lambda: self.w3.eth.max_priority_fee, "read the priority fee"))
        return {"maxFeePerGas": 2 * int(base_fee) + priority, "maxPriorityFeePerGas": priority}

    def _mined_revert(
        self, tx: dict[str, Any], receipt: TxReceipt, action: str
    ) -> TransactionError:
        replay = {k: v for k, v in tx.items() if k in ("from", "to", "value", "data", "gas")}
        try:
            self.w3.eth.call(replay, block_identifier=receipt["blockNumber"])  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return self._revert(exc, action)
        except Exception:  # noqa: BLE001, S110 - the replay is best effort: report the receipt
            pass
        return TransactionError(
            f"{action} reverted in block {receipt['blockNumber']} "
            f"(tx {receipt['transactionHash'].hex()})"
        )

    def _rpc_error(self, exc: Web3RPCError, action: str) -> TransactionError:
        message = str(exc)
        lowered = message.lower()
        if "insufficient funds" in lowered:
            balance = self.w3.eth.get_balance(self.address)
            return TransactionError(
                f"{self.address} has too little ETH for {action} (balance {balance} wei)",
                hint="fund the account, or lower the amount",
            )
        return TransactionError(f"the node refused {action}: {message[:300]}")

    @contextlib.contextmanager
    def _nonce_lock(self) -> Iterator[None]:
        if self.lock_dir is None:
            yield
            return
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        path = self.lock_dir / f"{self.address.lower()}.lock"
        with path.open("a") as handle:
            deadline = time.monotonic() + 60
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TransactionError(
                            f"another process has held the nonce lock {path} for 60 s",
                            hint="is a stuck blindframe process running for this account?",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
