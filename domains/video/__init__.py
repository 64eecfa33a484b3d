"""The video domain (in progress): loaders and clip sampling."""
