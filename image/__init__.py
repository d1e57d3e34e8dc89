"""Images: references, registry client, content store, safe layer unpack, image index."""
