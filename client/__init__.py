"""The artist side: encrypt, post, watch, verify, settle, decrypt."""
