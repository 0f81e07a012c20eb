"""The virtual-wardrobe Space's helpers: model loading, upload handling, and the checks on every request."""
