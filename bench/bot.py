"""The bot's reply latency and throughput through the fake Discord, against answering directly.

    .venv/bin/python -m bench.bot [--quick] [--results DIR] [--registry PATH] [--seed N] [--members N]

Candidate: the real bot (`bot.app.NamaeBot` on unmodified discord.py) connected to the fake
Discord on 127.0.0.1. A member posts synthetic pictures at typical upload sizes (768x768 portraits
and 1280x720 scenes of two or three characters, JPEG quality 90, every one unique); a reply is
timed from the message's dispatch to the moment the fake recorded the bot's reply, so the gateway
event, the attachment download, classification on the bot's worker pool, the catalog writes and
the reply's rendering and upload are all in it.

Baseline: the same pictures through `models.answer.answer_image` called directly (no Discord, no
event loop) with the same model, detector, crop size, limits and one ONNX thread, as the bot's
`InferenceService` loads them. Reply over direct is what Discord and the bot's own work add.

Variants: face detection off and on, and on with a character memory of 100 characters x 200 faces
(the open-set answer: head + memory + thresholds), one and four pictures per message. Latency posts one message
at a time and waits until it is answered (the first round is a warm-up and is discarded);
throughput posts a burst of messages at once and counts replies and pictures per second until the
last reply. Bots without a face detector, with the detector (the cascade), with the detector and
the memory, and (with --face-finder) with the trained face finder stay connected to one fake for the
whole run, each answering only in its own channel, so that every round visits every variant and the
direct baseline, and load from elsewhere on the machine falls on all alike.

With --members N, two more bots answer with the memory on a version of N training runs
(`NAMAE_TRAIN__MEMBERS`): one runs every member on every face (the graph alone), the other ships
member 1 as the first look deciding every face alone (`models.card.FirstLook`, no face handed
over). Against the memory bot's reply, they are what a version of N members costs a member when
every face, and when no face, is near one of member 1's bars; a real version hands over the share
`bench/openset.py` reports (`every_member`), and the payload's `members_at_share` interpolates
between the two at the shares given by --handover.

Without --registry, the trainer's default backbone is first exported into a throwaway registry
(bench/model.py, about 10 s). --quick is a smoke run of a few messages; its figures mean nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import Target, cascade_path, emit, parser, ratio, summary
from bench.stations import (
    JPEG_QUALITY,
    MEMBERS,
    MEMBERS_FIRST,
    MEMORY_CHARACTERS,
    MEMORY_FACES,
    PORTRAIT,
    SCENE,
    TRAINED,
    Pictures,
    Station,
    direct_answer,
    make_station,
    registry_with_model,
    say,
)
from bot.endpoints import point_discord_py_at
from sandbox.discord import FakeDiscord
from sandbox.discord.running import connected
from sandbox.discord.sharding import ShardingRules

MODES = ("no_faces", "faces", "faces_memory", "faces_two_looks")
# Messages in a burst carry 1, 2, 3, 4, 1, ... pictures: a mix, as a busy channel would.
BURST_PICTURES = (1, 2, 3, 4)
TIMEOUT_S = 120.0
TARGET_MS = 100.0


@dataclass(frozen=True)
class Sizes:
    rounds: int  # latency messages per variant, after one warm-up round
    burst: int  # messages per throughput burst


FULL = Sizes(rounds=40, burst=40)
QUICK = Sizes(rounds=3, burst=4)


@dataclass
class Work:
    """What every bot is sent: the same pictures to each, so the variants compare like with like."""

    one: list[bytes]  # one picture per latency round
    four: list[list[bytes]]  # four pictures per latency round
    burst: list[list[bytes]]

    @classmethod
    def draw(cls, sizes: Sizes, seed: int) -> Work:
        pictures = Pictures(seed)
        rounds = sizes.rounds + 1  # the warm-up round
        one = pictures.take(rounds)
        four = [pictures.take(4) for _ in range(rounds)]
        burst = [pictures.take(BURST_PICTURES[i % len(BURST_PICTURES)]) for i in range(sizes.burst)]
        return cls(one, four, burst)

    def all(self) -> list[bytes]:
        return [*self.one, *(p for m in self.four for p in m), *(p for m in self.burst for p in m)]


@dataclass
class Samples:
    latency: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    direct: dict[str, list[float]] = field(default_factory=dict)
    faces_found: dict[str, list[int]] = field(default_factory=dict)  # per one-image picture, by finder
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    rate_limited: int = 0
    bot: dict[str, Any] = field(default_factory=dict)


def _attachments(pictures: list[bytes]) -> list[tuple[str, bytes, str]]:
    return [(f"{i}.jpg", data, "image/jpeg") for i, data in enumerate(pictures)]


@dataclass
class Room:
    """The fake Discord, the member who posts and the bots that listen."""

    fake: FakeDiscord
    member: int
    stations: list[Station]

    async def post(self, station: Station, pictures: list[bytes]) -> tuple[int, float]:
        message_id = await self.fake.post_message(
            station.channel, self.member, "", attachments=_attachments(pictures)
        )
        # post_message dispatches without yielding, so no bot has started yet: timing from here
        # leaves out the fake's own handling of the upload.
        return message_id, time.monotonic()

    async def answered(self, message_id: int) -> None:
        # Both bots see every message. The next one is posted only when both are done with this
        # one, the answering bot's bookkeeping after its reply included, so no work spills over.
        for station in self.stations:
            await station.bot.answered.wait(message_id, TIMEOUT_S)

    async def reply_ms(self, station: Station, pictures: list[bytes]) -> float:
        message_id, posted = await self.post(station, pictures)
        reply = await self.fake.wait_for_message(reply_to=message_id, timeout=TIMEOUT_S)
        await self.answered(message_id)
        return (reply.created_at - posted) * 1000

    async def burst(self, station: Station, messages: list[list[bytes]]) -> dict[str, Any]:
        posted = dict([await self.post(station, pictures) for pictures in messages])
        replies = await asyncio.gather(
            *(self.fake.wait_for_message(reply_to=message_id, timeout=TIMEOUT_S) for message_id in posted)
        )
        for message_id in posted:
            await self.answered(message_id)
        seconds = max(reply.created_at for reply in replies) - min(posted.values())
        images = sum(len(pictures) for pictures in messages)
        return {
            "messages": len(messages),
            "images": images,
            "seconds": round(seconds, 3),
            "replies_per_s": round(len(messages) / seconds, 2),
            "images_per_s": round(images / seconds, 2),
            "reply_latency": summary([(r.created_at - posted[r.reply_to]) * 1000 for r in replies], 1),
        }


async def _measure(
    registry_root: Path,
    cascade: Path,
    work: Work,
    tmp: Path,
    finder: Path | None = None,
    members_root: Path | None = None,
) -> Samples:
    extra = (MEMBERS, MEMBERS_FIRST) if members_root else ()
    modes = (*MODES, *((TRAINED,) if finder is not None else ()), *extra)
    # Two bots with catalogs of their own cannot share IDENTIFY slots: the fake does not pace them.
    fake = FakeDiscord(sharding=ShardingRules(identify_interval_s=0))
    await fake.start()
    target = point_discord_py_at(fake.api_base, fake.gateway_url)
    stations: list[Station] = []
    try:
        guild = fake.add_guild("bench")
        member = guild.add_member("poster")
        for mode in modes:
            root = (
                members_root
                if mode in (MEMBERS, MEMBERS_FIRST) and members_root is not None
                else registry_root
            )
            stations.append(make_station(mode, tmp / mode, cascade, root, guild, finder))
        room = Room(fake, member, stations)
        by_mode = {station.mode: station for station in stations}
        samples = Samples()
        async with contextlib.AsyncExitStack() as stack:
            for station in stations:
                await stack.enter_async_context(connected(station.bot, fake, timeout=60))
            direct = {mode: direct_answer(station) for mode, station in by_mode.items()}
            say(f"{len(stations)} bots connected")
            variants = [(mode, count) for count in (1, 4) for mode in modes]
            samples.latency = {variant: [] for variant in variants}
            samples.direct = {mode: [] for mode in modes}
            for r in range(len(work.one)):
                # A different variant goes first each round, so none is always the one after a pause.
                shift = r % len(variants)
                for mode, count in variants[shift:] + variants[:shift]:
                    pictures = [work.one[r]] if count == 1 else work.four[r]
                    ms = await room.reply_ms(by_mode[mode], pictures)
                    if r:
                        samples.latency[(mode, count)].append(ms)
                # Synchronous on purpose: the baseline has no event loop; both bots are idle now.
                for mode in modes if r % 2 else modes[::-1]:
                    started = time.perf_counter()
                    result = direct[mode](work.one[r])
                    ms = (time.perf_counter() - started) * 1000
                    if r:
                        samples.direct[mode].append(ms)
                        if mode != "no_faces":
                            samples.faces_found.setdefault(mode, []).append(
                                sum(f.box is not None for f in result.faces)
                            )
                say(f"round {r}/{len(work.one) - 1}{' (warm-up)' if r == 0 else ''}")
            for station in stations:
                samples.throughput[station.mode] = await room.burst(station, work.burst)
                say(f"burst {station.mode}: {samples.throughput[station.mode]['images_per_s']} images/s")
            posted = len(work.all())
            for station in stations:
                # Every picture was classified, none refused or answered from a cache.
                classified = len(station.bot.inference.timings)
                if classified != posted:
                    raise RuntimeError(f"{station.mode}: {classified} pictures classified of {posted} posted")
        samples.rate_limited = len(fake.rate_limited)
        configured = stations[0].bot.settings.discord
        samples.bot = {
            "concurrency": configured.concurrency,
            "cache_size": configured.cache_size,
            "top_k": configured.top_k,
        }
        return samples
    finally:
        target.restore()
        await fake.stop()
        for station in stations:
            station.bot.engine.dispose()


def main() -> None:
    started = time.perf_counter()
    args_parser = parser(__doc__)
    args_parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="a model registry with an active version (default: export one)",
    )
    args_parser.add_argument(
        "--face-finder",
        type=Path,
        default=None,
        help="a trained face finder's folder (face.onnx + face.json): a third bot answers with it",
    )
    args_parser.add_argument(
        "--members",
        type=int,
        default=1,
        help="also a bot whose model is that many training runs as one graph (NAMAE_TRAIN__MEMBERS), "
        "with the memory, against the memory bot's one (exported here, untrained, as without --registry)",
    )
    args_parser.add_argument(
        "--handover",
        type=float,
        nargs="*",
        default=[0.062, 0.176],
        help="shares of faces member 1 hands over to every member, for members_at_share (default: the "
        "dev set's known characters and strangers, bench/openset.py on the three-member dev version)",
    )
    args = args_parser.parse_args()
    if not 1 <= args.members <= 4:
        args_parser.error(f"--members {args.members}: 1 to 4")
    sizes = QUICK if args.quick else FULL
    cascade = cascade_path()
    with tempfile.TemporaryDirectory(prefix="namae-bench-bot-") as name:
        tmp = Path(name)
        registry_root, model = registry_with_model(args.registry, tmp)
        say(f"model {model['version']} ({model['backbone']}, {model['image_size']} px)")
        drawing = time.perf_counter()
        work = Work.draw(sizes, args.seed)
        drawing = time.perf_counter() - drawing
        say(f"{len(work.all())} pictures drawn in {drawing:.1f} s")
        members_root = None
        if args.members > 1:
            from bench.model import export_default_model

            members_root = export_default_model(tmp / "members", members=args.members).registry_root
            model["members"] = args.members
        samples = asyncio.run(_measure(registry_root, cascade, work, tmp, args.face_finder, members_root))

    modes = [mode for mode in (*MODES, TRAINED, MEMBERS, MEMBERS_FIRST) if mode in samples.direct]
    latency = {
        name: {mode: summary(samples.latency[(mode, count)], 1) for mode in modes}
        for count, name in ((1, "one_image"), (4, "four_images"))
    }
    direct = {mode: summary(samples.direct[mode], 1) for mode in modes}
    p50 = {key: {mode: s["median_ms"] for mode, s in value.items()} for key, value in latency.items()}
    pictures = work.all()
    results = {
        "reply_latency": latency,
        "direct_answer_image": direct,
        "throughput": samples.throughput,
        "pictures": {
            "count": len(pictures),
            "portrait": f"{PORTRAIT}x{PORTRAIT}",
            "scene": f"{SCENE[0]}x{SCENE[1]}, 2 or 3 characters",
            "mix": "two portraits, then a scene",
            "jpeg_quality": JPEG_QUALITY,
            "mean_kib": round(sum(map(len, pictures)) / len(pictures) / 1024, 1),
            # On the one-image pictures: without a face the bot classifies the whole picture.
            "faces_found_per_picture": {
                mode: round(float(np.mean(found)), 2) for mode, found in samples.faces_found.items()
            },
            "share_with_a_face_found": {
                mode: round(float(np.mean([n > 0 for n in found])), 3)
                for mode, found in samples.faces_found.items()
            },
        },
        "model": model,
        "bot": samples.bot | {"rate_limited_requests": samples.rate_limited},
    }
    ratios = {
        "reply_over_direct_p50_no_faces": ratio(
            p50["one_image"]["no_faces"], direct["no_faces"]["median_ms"]
        ),
        "reply_over_direct_p50_faces": ratio(p50["one_image"]["faces"], direct["faces"]["median_ms"]),
        "faces_over_no_faces_reply_p50": ratio(p50["one_image"]["faces"], p50["one_image"]["no_faces"]),
        "four_over_one_image_reply_p50_no_faces": ratio(
            p50["four_images"]["no_faces"], p50["one_image"]["no_faces"]
        ),
        "four_over_one_image_reply_p50_faces": ratio(p50["four_images"]["faces"], p50["one_image"]["faces"]),
        "memory_over_faces_reply_p50": ratio(p50["one_image"]["faces_memory"], p50["one_image"]["faces"]),
        "memory_over_faces_direct_p50": ratio(
            direct["faces_memory"]["median_ms"], direct["faces"]["median_ms"]
        ),
        "two_looks_over_memory_reply_p50": ratio(
            p50["one_image"]["faces_two_looks"], p50["one_image"]["faces_memory"]
        ),
        "two_looks_over_memory_direct_p50": ratio(
            direct["faces_two_looks"]["median_ms"], direct["faces_memory"]["median_ms"]
        ),
    }
    targets = [
        Target("bot median reply latency, one image with faces", TARGET_MS, p50["one_image"]["faces"], "ms")
    ]
    targets.append(
        Target(
            f"reply p50 with a {MEMORY_CHARACTERS} x {MEMORY_FACES} memory over without",
            1.10,
            ratios["memory_over_faces_reply_p50"],
            "x",
        )
    )

    def variant(mode: str, base: str, name: str, bound: float, title: str) -> None:
        """A bot run only with its option (--face-finder, --members): its p50s over `base`'s."""
        if mode not in direct:
            return
        ratios[f"{name}_reply_p50"] = ratio(p50["one_image"][mode], p50["one_image"][base])
        ratios[f"{name}_direct_p50"] = ratio(direct[mode]["median_ms"], direct[base]["median_ms"])
        targets.append(Target(title, bound, ratios[f"{name}_reply_p50"], "x"))

    variant(TRAINED, "faces", "trained_over_cascade_faces", 1.2,
            "reply p50 with the trained finder over the cascade's, one image")  # fmt: skip
    variant(MEMBERS, "faces_memory", "members_over_memory", 1.10,
            f"reply p50 of {args.members} training runs as one graph over one, with the memory")  # fmt: skip
    variant(MEMBERS_FIRST, "faces_memory", "members_first_over_memory", 1.10,
            f"reply p50 of {args.members} training runs, member 1 deciding alone, over one")  # fmt: skip
    if MEMBERS_FIRST in direct:
        # member 1 on every face, and every member again on the share handed over
        for key, tag in (("one_image", ""), ("four_images", "_four")):
            base = p50[key]["faces_memory"]
            extra_ms = max(0.0, p50[key][MEMBERS] - base)
            for share in args.handover:
                at = p50[key][MEMBERS_FIRST] + share * extra_ms
                ratios[f"members_at_share_{share:g}_over_memory_reply_p50{tag}"] = ratio(at, base)
    payload = {
        "baseline": (
            "models.answer.answer_image called directly on the same pictures: no Discord, no event loop; "
            "the same model, face detector, crop size, image limits and one ONNX thread as the bot"
        ),
        "candidate": (
            "NamaeBot on real discord.py answering posts in the fake Discord: gateway event, attachment "
            "download, classification on its worker pool, catalog writes, reply; timed post to reply"
        ),
        "results": results,
        "ratios": ratios,
        "targets": [target.as_dict() for target in targets],
    }
    emit("bot", payload, args, started)


if __name__ == "__main__":
    main()
