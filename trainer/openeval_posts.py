"""`namae eval --posts DIR`: ordinary posts of known characters answered as the bot answers them.

    posts/<character>/*      whole pictures as people post them (one character each)

`namae eval`'s known and unknown sets are face crops; real posts first go through the face finder,
and when it finds nothing the finder's weaker boxes and then the whole picture are answered under
the stricter no-face bar. Each post goes through the one answer path
(`trainer.openeval.answer_as_posted`); its answer is its most confident face (a post shows the
character it is filed under). Reported: the share of posts answered without a face (no face found,
and none of the weaker boxes named), what is named and how often right, overall and on those
posts apart.
"""

from __future__ import annotations

from typing import Any

from media.faces import FaceFinder
from models.classifier import Classifier
from trainer.openeval_answers import Pictures, answer_as_posted, kinds, known_figures, name_given


def evaluate_posts(classifier: Classifier, posts: Pictures, finder: FaceFinder | None) -> dict[str, Any]:
    """The figures of the module docstring, as plain data (`report.json`'s `posts`)."""
    answered = answer_as_posted(classifier, posts, finder)
    truth = [str(label) for label in posts.labels]
    labels = sorted(set(truth))
    predicted = [name_given(d) for d, _ in answered]
    without = [i for i, (_, found) in enumerate(answered) if not found]
    return {
        "pictures": len(truth),
        "skipped": posts.skipped,
        "finder": finder is not None,
        "no_face_found": len(without) / max(1, len(truth)),
        "answer": known_figures(labels, truth, predicted),
        "kinds": kinds([d for d, _ in answered]),
        "no_face": {
            "pictures": len(without),
            "named": sum(predicted[i] is not None for i in without) / max(1, len(without)),
            "named_right": sum(predicted[i] == truth[i] for i in without) / max(1, len(without)),
        },
    }
