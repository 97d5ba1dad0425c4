"""Tiny images and parallel captions for the loader tests: image i is a solid colour, so a loaded row's
pixels tell which image it is, independently of the id the loader assigned."""

from __future__ import annotations

import io

from PIL import Image

COLORS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30), (30, 220, 220), (200, 30, 200)]

CAPTIONS = {
    "en": [
        "A red square.",
        "A green field.",
        "The blue sea.",
        "A yellow taxi.",
        "Cyan water.",
        "A purple flower.",
    ],
    "de": [
        "Ein rotes Quadrat.",
        "Ein grünes Feld.",
        "Das blaue Meer.",
        "Ein gelbes Taxi.",
        "Türkises Wasser.",
        "Eine lila Blume.",
    ],
    "fr": [
        "Un carré rouge.",
        "Un champ vert.",
        "La mer bleue.",
        "Un taxi jaune.",
        "De l'eau cyan.",
        "Une fleur violette.",
    ],
    "cs": [
        "Červený čtverec.",
        "Zelené pole.",
        "Modré moře.",
        "Žluté taxi.",
        "Azurová voda.",
        "Fialový květ.",
    ],
    "ja": ["赤い四角。", "緑の野原。", "青い海。", "黄色いタクシー。", "シアンの水。", "紫の花。"],
    "zh": ["红色的方块。", "绿色的田野。", "蓝色的大海。", "黄色的出租车。", "青色的水。", "紫色的花。"],
}


def image_bytes(index: int, fmt: str = "JPEG", size: tuple[int, int] = (20, 14)) -> bytes:
    """Encoded solid-colour image number ``index``."""
    buffer = io.BytesIO()
    Image.new("RGB", size, COLORS[index]).save(buffer, format=fmt)
    return buffer.getvalue()


def color_index(image: Image.Image) -> int:
    """Which fixture image a decoded image is: the colour nearest to its centre pixel."""
    pixel = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    return min(
        range(len(COLORS)), key=lambda i: sum((a - b) ** 2 for a, b in zip(pixel, COLORS[i], strict=True))
    )


def truncated(data: bytes) -> bytes:
    """The first half of an encoded image: a damaged file."""
    return data[: len(data) // 2]
