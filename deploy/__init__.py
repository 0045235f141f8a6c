"""Local stack (Anvil, IPFS) and contract deployment to any EVM chain."""
