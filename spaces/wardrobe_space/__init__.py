"""The virtual-wardrobe Space's helpers: model loading, upload handling, and a local server for tests."""
