from .blobs import BlobStore, BlobWriter
from .store import Image, Store, default_root, canonical_json

__all__ = ["BlobStore", "BlobWriter", "Image", "Store", "canonical_json", "default_root"]
