"""The virtual-wardrobe Space's helpers: model loading and upload handling."""
