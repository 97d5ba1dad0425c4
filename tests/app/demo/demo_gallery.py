"""The demo tests' gallery settings (a module of its own, so that test files import them by a unique name)."""

GALLERY_LANGUAGES = ["en", "de", "ja", "ru", "zh"]
GALLERY_SIZE = 24
