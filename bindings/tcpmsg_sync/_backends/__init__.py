"""The primitives the sync implementation runs on: the seam (``base``) and its two sides."""
