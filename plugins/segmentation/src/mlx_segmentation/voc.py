"""The Pascal VOC format's fixed facts: class names, the ignore id, the colour map; shared by the
reader (``data.py``) and the sample generator (``sample.py``)."""

from __future__ import annotations

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
IGNORE = 255


def voc_palette() -> list[int]:
    """The standard VOC colour map (768 ints: r, g, b for ids 0..255; 255 is cream-white)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def class_names(num_classes: int) -> list[str]:
    return [VOC_CLASSES[i] if i < len(VOC_CLASSES) else f"class{i}" for i in range(num_classes)]
