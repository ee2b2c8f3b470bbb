"""Data: the manifest contract, readers for real formats, transforms, packed shards."""
