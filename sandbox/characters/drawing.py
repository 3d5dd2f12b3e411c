"""Vector drawing of one anime-style head and shoulders with PIL.

Every part is built as points in a head-local frame (face width = 1, face centre at the origin, y
down), then rotated, scaled and translated onto a supersampled canvas. Drawing polygons in that
frame keeps head tilt exact and lets the same code draw one character or a crowded scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from sandbox.characters.traits import CharacterSpec

RGB = tuple[int, int, int]
Points = np.ndarray  # shape (n, 2), head-local units

OUTLINE = (52, 34, 34)
LASH = (28, 20, 24)
WHITE = (255, 255, 255)
SCLERA = (250, 250, 255)


def shade(rgb: RGB | list[int], factor: float) -> RGB:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of a colour."""
    if factor <= 1:
        return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor))
    t = factor - 1
    return tuple(int(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def ellipse(
    cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0, n: int = 40
) -> Points:
    t = np.radians(np.linspace(a0, a1, n, endpoint=(a1 - a0) < 360))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rotate(points: Points, degrees: float, about: tuple[float, float] = (0.0, 0.0)) -> Points:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    p = points - about
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1) + about


@dataclass(frozen=True)
class Pose:
    """Where and how one head lands on the canvas (final-image pixels, before supersampling)."""

    cx: float  # face centre
    cy: float
    face_px: float  # face width
    tilt: float  # degrees, positive = clockwise on screen
    yaw: float  # -1..1, turns the features sideways
    line_weight: float  # multiplies every outline
    expression: str  # "smile", "open", "flat"
    gaze: tuple[float, float]  # pupil offset, fraction of the iris


class Pen:
    """Draws head-local shapes onto a supersampled canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, pose: Pose, supersample: int) -> None:
        self.draw = draw
        self.pose = pose
        self.scale = pose.face_px * supersample
        self.offset = np.array([pose.cx * supersample, pose.cy * supersample])
        a = math.radians(pose.tilt)
        self.rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    def to_canvas(self, points: Points) -> list[tuple[float, float]]:
        p = points @ self.rotation.T * self.scale + self.offset
        return [(float(x), float(y)) for x, y in p]

    def width(self, units: float) -> int:
        return max(1, round(units * self.scale * self.pose.line_weight))

    def fill(self, points: Points, colour: RGB, outline: RGB | None = None, width: float = 0.018) -> None:
        pts = self.to_canvas(points)
        self.draw.polygon(pts, fill=colour)
        if outline is not None:
            self.draw.line([*pts, pts[0]], fill=outline, width=self.width(width), joint="curve")

    def stroke(self, points: Points, colour: RGB, width: float = 0.018) -> None:
        self.draw.line(self.to_canvas(points), fill=colour, width=self.width(width), joint="curve")


# --- the face -----------------------------------------------------------------------------------

FACE_GEOMETRY = {  # chin depth, taper towards the chin, squareness of the jaw
    "round": (0.57, 0.12, 1.0),
    "oval": (0.6, 0.18, 1.0),
    "pointed": (0.64, 0.3, 1.0),
    "square": (0.58, 0.14, 0.8),
}
# The proportions below were tuned by search against the anime face cascade (lbpcascade_animeface,
# the product's detector): big dark outlined irises with catch-lights, a face narrower than the
# hair with a heavy chin line, and side locks framing it took per-face recall from about 40% to
# 99%. Change them only with tests/sandbox/test_characters.py's cascade tests running.
EYE_GEOMETRY = {  # height, tilt of the outer corner (degrees, + = down)
    "round": (0.39, 0.0),
    "narrow": (0.29, -4.0),
    "droopy": (0.37, 9.0),
    "sharp": (0.33, -11.0),
}
EYE_Y = 0.115  # eye centres
EYE_X = 0.23
EYE_W = 0.213
LASH_W = 0.036  # upper lash line
LOWER_LID_W = 0.011
IRIS_RX = 0.395  # iris radii as fractions of the eye's width and height
IRIS_RY = 0.446
IRIS_DARK = 0.388  # how dark the iris rim is against the eye colour
FACE_HALF_WIDTH = 0.45  # skin at the cheeks; the hair cap is wider (CAP)
FACE_LINE_W = 0.04  # the face and chin outline
MOUTH_Y = 0.46
BANGS_DROP = -0.052  # raises the fringe so the eyes stay clear
LOCK_EXTRA = 0.15  # side locks run this much below the style's own length
LOCK_INNER = 0.44  # how far the side locks reach in over the cheeks


def face_outline(shape: str) -> Points:
    chin, taper, square = FACE_GEOMETRY[shape]
    t = np.radians(np.linspace(0, 360, 72, endpoint=False))
    s, c = np.sin(t), np.cos(t)
    lower = s > 0
    x = FACE_HALF_WIDTH * np.sign(c) * np.abs(c) ** np.where(lower, square, 1.0)
    x = np.where(lower, x * (1 - taper * np.abs(s) ** 1.5), x)
    y = np.where(lower, chin * s, 0.56 * s)
    return np.stack([x, y], axis=1)


def draw_face(pen: Pen, spec: CharacterSpec) -> None:
    skin = spec.colour("skin")
    shape = spec.traits["face_shape"]
    for side in (-1, 1):  # ears peek out under the hair
        pen.fill(ellipse(side * (FACE_HALF_WIDTH + 0.03), 0.1, 0.07, 0.12), skin, OUTLINE)
    pen.fill(face_outline(shape), skin, OUTLINE, width=FACE_LINE_W)
    yaw = pen.pose.yaw
    for side in (-1, 1):
        draw_eye(pen, spec, side)
    # eyebrows, mostly under the bangs
    for side in (-1, 1):
        x = side * EYE_X + yaw * 0.05
        pen.stroke(ellipse(x, EYE_Y - 0.06, 0.12, 0.12, 240 if side < 0 else 250, 290 if side < 0 else 300, 8),
                   shade(spec.colour("hair_colour"), 0.55), 0.014)  # fmt: skip
    nose_x = yaw * 0.09
    pen.stroke(np.array([[nose_x + 0.01, 0.31], [nose_x - 0.01, 0.345]]), shade(skin, 0.62), 0.014)
    draw_mouth(pen, nose_x * 0.9, MOUTH_Y)
    if spec.traits["face_shape"] in ("round", "oval"):  # blush hatching
        for side in (-1, 1):
            cx = side * 0.27 + yaw * 0.05
            for k in (-1, 0, 1):
                x0 = cx + k * 0.035
                pen.stroke(np.array([[x0 + 0.012, 0.275], [x0 - 0.012, 0.305]]), (236, 120, 120), 0.008)


def draw_eye(pen: Pen, spec: CharacterSpec, side: int) -> None:
    height, corner_tilt = EYE_GEOMETRY[spec.traits["eye_shape"]]
    yaw = pen.pose.yaw
    # The eye on the side the head turns towards shrinks a little: a cheap three-quarter view.
    width = EYE_W * (1 - 0.18 * yaw * side)
    cx, cy = side * EYE_X * (1 - 0.1 * yaw * side) + yaw * 0.07, EYE_Y
    centre = (cx, cy)
    tilt = corner_tilt * side

    def place(points: Points) -> Points:
        return rotate(points, tilt, centre)

    iris_colour = spec.colour("eye_colour")
    pen.fill(place(ellipse(cx, cy, width / 2, height / 2)), SCLERA)
    gx, gy = pen.pose.gaze
    ix, iy = cx + gx * width * 0.12, cy + height * 0.06 + gy * height * 0.06
    irx, iry = width * IRIS_RX, height * IRIS_RY
    pen.fill(place(ellipse(ix, iy, irx, iry)), shade(iris_colour, IRIS_DARK), LASH, 0.008)
    pen.fill(place(ellipse(ix, iy + iry * 0.22, irx * 0.78, iry * 0.7)), iris_colour)
    pen.fill(place(ellipse(ix, iy + iry * 0.05, irx * 0.42, iry * 0.5)), shade(iris_colour, 0.22))
    # highlights: a big catch-light up-left and a small one down-right, the anime signature
    pen.fill(place(ellipse(ix - irx * 0.38, iy - iry * 0.38, irx * 0.36, irx * 0.36, n=20)), WHITE)
    pen.fill(place(ellipse(ix + irx * 0.42, iy + iry * 0.45, irx * 0.16, irx * 0.16, n=12)), WHITE)
    # thick upper lash line, past the outer corner, and a thin lower lid
    lash = ellipse(cx, cy + height * 0.08, width * 0.56, height * 0.6, 195, 345, 24)
    if side > 0:
        lash = lash[::-1]
    flick = np.array([[cx + side * width * 0.62, cy - height * 0.02]])
    pen.stroke(place(np.concatenate([lash, flick])), LASH, LASH_W)
    pen.stroke(
        place(ellipse(cx, cy - height * 0.05, width * 0.42, height * 0.55, 60, 120, 8)), LASH, LOWER_LID_W
    )


def draw_mouth(pen: Pen, x: float, y: float) -> None:
    expression = pen.pose.expression
    if expression == "open":
        mouth = ellipse(x, y, 0.05, 0.035, 0, 180, 12)
        mouth = np.concatenate([np.array([[x - 0.055, y - 0.005], [x + 0.055, y - 0.005]]), mouth[::-1]])
        pen.fill(mouth, (150, 40, 50), OUTLINE, 0.01)
        pen.fill(ellipse(x, y + 0.02, 0.025, 0.01, n=10), (232, 120, 130))
    elif expression == "smile":
        pen.stroke(ellipse(x, y - 0.03, 0.05, 0.04, 30, 150, 10), OUTLINE, 0.012)
    else:
        pen.stroke(np.array([[x - 0.035, y], [x + 0.035, y]]), OUTLINE, 0.012)


# --- hair -----------------------------------------------------------------------------------------

CAP = (0.0, -0.15, 0.63, 0.66)  # centre x, y, radius x, y of the skull under the hair


def cap_arc(a0: float, a1: float, n: int = 30, grow: float = 1.0) -> Points:
    cx, cy, rx, ry = CAP
    return ellipse(cx, cy, rx * grow, ry * grow, a0, a1, n)


def back_hair(style: str) -> list[Points]:
    """Hair drawn behind the face and body."""
    cx, cy, rx, ry = CAP
    shapes: list[Points] = []
    if style == "spiky":
        t = np.radians(np.linspace(140, 400, 27))
        r = np.where(np.arange(27) % 2 == 0, 1.0, 1.22)
        shapes.append(np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], axis=1))
    else:
        shapes.append(ellipse(cx, cy, rx, ry))
    if style == "short":
        shapes.append(
            np.array([[-0.6, -0.1], [-0.58, 0.3], [-0.4, 0.2], [0.4, 0.2], [0.58, 0.3], [0.6, -0.1]])
        )
    elif style == "bob":
        shapes.append(np.array([[-0.63, -0.2], [-0.7, 0.3], [-0.66, 0.56], [-0.5, 0.6], [-0.3, 0.4],
                                [0.3, 0.4], [0.5, 0.6], [0.66, 0.56], [0.7, 0.3], [0.63, -0.2]]))  # fmt: skip
    elif style == "long":
        bottom = [[x, 1.75 + (0.1 if i % 2 else 0)] for i, x in enumerate(np.linspace(0.74, -0.74, 9))]
        shapes.append(np.array([[-0.62, -0.25], [-0.72, 0.5], [-0.78, 1.2], *bottom[::-1],
                                [0.78, 1.2], [0.72, 0.5], [0.62, -0.25]]))  # fmt: skip
    elif style == "twin_tails":
        for side in (-1, 1):
            tail = np.array([[0.42, -0.6], [0.78, -0.5], [1.0, -0.1], [1.02, 0.6], [0.9, 1.3], [0.98, 1.6],
                             [0.76, 1.2], [0.7, 0.5], [0.66, 0.0], [0.5, -0.35]])  # fmt: skip
            shapes.append(tail * [side, 1])
    elif style == "ponytail":
        shapes.append(np.array([[0.3, -0.72], [0.75, -0.7], [1.0, -0.35], [1.05, 0.3], [0.92, 1.0],
                                [0.98, 1.25], [0.78, 1.0], [0.72, 0.3], [0.62, -0.3]]))  # fmt: skip
    return shapes


def bangs_outline(kind: str, style: str) -> Points:
    """The front hair over the forehead with the side locks that frame the face."""
    side_len = {"short": 0.3, "bob": 0.45, "long": 0.6, "twin_tails": 0.42, "ponytail": 0.4, "spiky": 0.35}[
        style
    ]
    top = cap_arc(180, 360, 28, grow=1.0)  # left temple over the crown to right temple
    side_len += LOCK_EXTRA
    inner = -LOCK_INNER
    left_lock = np.array([[-0.62, -0.15], [-0.6, 0.15], [-0.55, side_len], [inner, side_len - 0.12],
                          [inner + 0.02, 0.05]])  # fmt: skip
    right_lock = left_lock[::-1] * [-1, 1]
    if kind == "spiky":
        xs = np.linspace(-0.42, 0.42, 9)
        ys = np.where(np.arange(9) % 2 == 0, -0.02, -0.2)
        ys[0] = ys[-1] = -0.05
        fringe = np.stack([xs, ys + 0.03 * np.abs(xs)], axis=1)
    elif kind == "straight":
        xs = np.linspace(-0.42, 0.42, 13)
        ys = np.where(np.arange(13) % 2 == 0, -0.04, -0.09)
        fringe = np.stack([xs, ys], axis=1)
    elif kind == "swept":
        xs = np.linspace(-0.42, 0.42, 7)
        tips = np.where(np.arange(7) % 2 == 0, 0.0, -0.14) - 0.16 * (xs + 0.42)
        fringe = np.stack([xs + np.where(np.arange(7) % 2 == 0, 0.06, 0.0), tips], axis=1)
    else:  # parted in the middle: the forehead shows in a tall notch
        fringe = np.array([[-0.42, 0.0], [-0.3, -0.04], [-0.18, -0.14], [-0.06, -0.3], [0.0, -0.44],
                           [0.06, -0.3], [0.18, -0.14], [0.3, -0.04], [0.42, 0.0]])  # fmt: skip
    fringe = fringe + [0.0, BANGS_DROP]
    # outline order: left temple -> crown -> right temple -> right lock -> fringe (right to left) -> left lock
    return np.concatenate([top, right_lock, fringe[::-1], left_lock])


def draw_front_hair(pen: Pen, spec: CharacterSpec) -> None:
    hair = spec.colour("hair_colour")
    outline = shade(hair, 0.45)
    pen.fill(bangs_outline(spec.traits["bangs"], spec.traits["hair_style"]), hair, outline, 0.02)
    # strand lines and the glossy "angel ring" highlight
    for x in (-0.3, -0.1, 0.12, 0.32):
        pen.stroke(np.array([[x * 0.7, -0.55], [x, -0.22]]), outline, 0.01)
    pen.stroke(cap_arc(215, 265, 10, grow=0.8), shade(hair, 1.45), 0.03)
    pen.stroke(cap_arc(280, 325, 10, grow=0.8), shade(hair, 1.45), 0.03)


# --- body and accessories -------------------------------------------------------------------------


def draw_body(pen: Pen, spec: CharacterSpec) -> None:
    skin = spec.colour("skin")
    outfit = spec.colour("outfit")
    pen.fill(np.array([[-0.13, 0.4], [0.13, 0.4], [0.15, 1.0], [-0.15, 1.0]]), skin, OUTLINE)
    pen.fill(np.array([[-0.13, 0.5], [0.13, 0.5], [0.13, 0.62], [-0.13, 0.7]]), shade(skin, 0.85))
    shoulders = np.array([[-0.16, 0.86], [-0.55, 0.95], [-0.92, 1.12], [-1.1, 1.5], [-1.15, 2.4],
                          [1.15, 2.4], [1.1, 1.5], [0.92, 1.12], [0.55, 0.95], [0.16, 0.86],
                          [0.0, 1.12]])  # fmt: skip
    pen.fill(shoulders, outfit, shade(outfit, 0.4), 0.018)
    collar = shade(outfit, 1.6) if sum(outfit) < 400 else shade(outfit, 0.7)
    pen.stroke(np.array([[-0.5, 0.96], [-0.05, 1.3], [0.0, 1.5]]), collar, 0.03)
    pen.stroke(np.array([[0.5, 0.96], [0.05, 1.3], [0.0, 1.5]]), collar, 0.03)


def draw_accessory_behind(pen: Pen, spec: CharacterSpec) -> None:
    hair = spec.colour("hair_colour")
    if spec.traits["accessory"] == "cat_ears":
        for side in (-1, 1):
            ear = np.array([[0.18, -0.72], [0.5, -1.08], [0.58, -0.52]]) * [side, 1]
            pen.fill(ear, hair, shade(hair, 0.45), 0.02)
            inner = np.array([[0.27, -0.72], [0.48, -0.96], [0.52, -0.62]]) * [side, 1]
            pen.fill(inner, (246, 170, 180))
    style = spec.traits["hair_style"]
    if style in ("twin_tails", "ponytail"):  # hair ties where the tails start
        accent = spec.colour("accent")
        sides = (-1, 1) if style == "twin_tails" else (1,)
        for side in sides:
            x, y = (0.62, -0.5) if style == "twin_tails" else (0.66, -0.6)
            pen.fill(ellipse(side * x, y, 0.08, 0.08, n=16), accent, shade(accent, 0.45))


def draw_accessory_front(pen: Pen, spec: CharacterSpec) -> None:
    kind = spec.traits["accessory"]
    accent = spec.colour("accent")
    edge = shade(accent, 0.45)
    if kind == "ribbon":
        x, y = 0.34, -0.7
        for side in (-1, 1):
            wing = np.array([[x, y], [x + side * 0.24, y - 0.14], [x + side * 0.26, y + 0.1]])
            pen.fill(wing, accent, edge, 0.018)
        pen.fill(ellipse(x, y, 0.055, 0.055, n=14), shade(accent, 0.8), edge, 0.015)
    elif kind == "hairclip":
        for k in (0, 1):
            bar = np.array([[-0.44, -0.28], [-0.2, -0.38], [-0.19, -0.34], [-0.43, -0.24]]) + [0.0, 0.08 * k]
            pen.fill(bar, accent, edge, 0.01)
    elif kind == "headband":
        pen.stroke(cap_arc(195, 345, 24, grow=0.93), accent, 0.075)
    elif kind == "flower":
        cx, cy = -0.5, -0.5
        for k in range(5):
            a = math.radians(72 * k - 90)
            pen.fill(
                ellipse(cx + 0.09 * math.cos(a), cy + 0.09 * math.sin(a), 0.07, 0.07, n=12),
                accent,
                edge,
                0.01,
            )
        pen.fill(ellipse(cx, cy, 0.05, 0.05, n=12), (250, 220, 80))
    elif kind == "beret":
        beret = ellipse(-0.12, -0.74, 0.42, 0.16, n=32)
        pen.fill(rotate(beret, -12, (-0.12, -0.74)), accent, edge, 0.018)
        pen.fill(ellipse(-0.1, -0.92, 0.035, 0.035, n=10), shade(accent, 0.7), edge, 0.01)


def draw_character(pen: Pen, spec: CharacterSpec) -> None:
    hair = spec.colour("hair_colour")
    draw_accessory_behind(pen, spec)
    for shape in back_hair(spec.traits["hair_style"]):
        pen.fill(shape, hair, shade(hair, 0.45), 0.02)
    draw_body(pen, spec)
    draw_face(pen, spec)
    draw_front_hair(pen, spec)
    draw_accessory_front(pen, spec)


FACE_BOX = (0.0, 0.18, 1.2)  # centre x, y and side of the face box, head-local units


def face_box(pose: Pose) -> tuple[int, int, int, int]:
    """The face as (x, y, w, h) in final-image pixels.

    A square framed the way anime face detectors frame a face: cheek to cheek with a margin, from
    the hairline to just below the chin, following the head's tilt.
    """
    a = math.radians(pose.tilt)
    bx, by, side = FACE_BOX
    cx = pose.cx + (bx * math.cos(a) - by * math.sin(a)) * pose.face_px
    cy = pose.cy + (bx * math.sin(a) + by * math.cos(a)) * pose.face_px
    half = side * pose.face_px / 2
    return (round(cx - half), round(cy - half), round(2 * half), round(2 * half))
