"""The lexicon's literal pre-screen is exact: it only ever skips patterns that cannot match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmrec.safety.lexicon import Lexicon
from llmrec.safety.matching import compile_pattern
from llmrec.safety.prefilter import LiteralScreen, required_literals

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "pattern, required",
    [
        ("idiots?|morons?", {"idiot", "moron"}),
        ("shut (?:up|your mouth)", {"shut "}),
        ("(?:i|we) will (?:kill|hurt) you", {" will "}),
        ("f+u+c+k+", None),  # no literal of two characters is certain
        ("(?:kill)?ing", {"ing"}),
        ("a|bc", None),  # one branch requires nothing of two characters
        ("(?<!when )you(?:'re| are) dead", {" dead"}),  # the most selective one
        (r"\w+ on sight", {" on sight"}),
        ("σας", None),  # non-ASCII: "ς" matches "σ" case-insensitively, so no literal
        ("xyzμab", {"xyz"}),
    ],
)
def test_required_literals(pattern, required):
    got = required_literals(compile_pattern(pattern))
    assert (None if got is None else set(got)) == required


@pytest.mark.parametrize(
    "text, pattern, may",
    [
        ("you are an idiot", "idiots?", True),
        ("a lovely film", "idiots?", False),
        ("an ıdiot", "idiots?", True),  # dotless i matches "i" case-insensitively: no screen
        ("killing", "(?:kill)?ing", True),
        ("ςας", "σας", True),
    ],
)
def test_screen_never_skips_a_match(text, pattern, may):
    regex = compile_pattern(pattern)
    screen = LiteralScreen([regex])
    assert screen.may_match(regex, screen.present(text)) is may
    if regex.search(text):
        assert may


def test_screened_lexicon_equals_the_full_scan():
    texts = []
    for path in [*sorted((ROOT / "llmrec/safety/data").glob("*.jsonl")),
                 *sorted((ROOT / "eval/safety").glob("safety_holdout*.jsonl")),
                 *sorted((ROOT / "llmrec/safety/data/frozen").glob("safety_holdout*.jsonl")),
                 ROOT / "eval/safety/pending/examples_set7.jsonl"]:
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line]
    texts += ["Y0u are such an 1d10t", "ıdiot, you are", "I'll k1ll y0u", "KYS", "n1gg3r",
              "you're dead meat", "Because you watched Kill Bill (Action; 2003).", ""]
    screened, full = Lexicon(), Lexicon()
    full._screen.present = lambda text: None  # every pattern runs
    assert len(texts) > 350
    for text in texts:
        assert screened.analyze(text) == full.analyze(text), text
