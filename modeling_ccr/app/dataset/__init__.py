"""``ccr data build``: the embedded ``cldr-emoji`` benchmark built from pinned npm packages."""
