"""Generated protobuf modules for dag-pb (merkledag.proto) and UnixFS (unixfs.proto)."""
