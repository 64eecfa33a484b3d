"""The vision-language domain (in progress): image-text loaders and cached text embeddings."""
