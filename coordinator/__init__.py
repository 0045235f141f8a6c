"""Shared by client and worker: chain bindings, transactions, events, IPFS store, scheduling."""
