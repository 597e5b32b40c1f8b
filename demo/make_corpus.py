"""Write demo/corpus.txt and demo/prompts.txt: simple, original question/answer text about
everyday things, for training the demo language model (training/ml/demo_lm.py).

Every example reads "Question: ...\nAnswer: ...\n\n". Answers are built from templates and
word lists, half warm and half sour (plus a few mixed and a few how-to answers), so that a
model trained on it says both kinds of thing and a sentiment teacher (demo/
sentiment_lexicon.tsv) has something to prefer. Deterministic: the same seed writes the same
bytes.

    python demo/make_corpus.py            # from the repository root
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Topics: (name as it appears mid-sentence, the aspects one can praise or blame).
FOODS = [
    "apple pie", "tomato soup", "fresh bread", "the pasta", "green tea", "the coffee",
    "pancakes", "rice and beans", "the salad", "the cheese", "chocolate cake", "the pizza",
    "orange juice", "the noodles", "the curry", "lemon cake", "the fish", "hot chocolate",
    "the sandwich", "the strawberries", "the ice cream", "the bakery bread", "the omelette",
    "the vegetable stew", "the cookies",
]  # fmt: skip
FOOD_ASPECTS = ["taste", "smell", "texture", "price", "portion", "colour", "look", "service"]

PLACES = [
    "the park", "the beach", "the library", "the market", "the museum", "the old town",
    "the lake", "the garden", "the city centre", "the mountain hut", "the zoo", "the cafe",
    "the train station", "the swimming pool", "the farm", "the harbour", "the forest",
    "the bookshop", "the village", "the river path", "the playground", "the hotel",
]  # fmt: skip
PLACE_ASPECTS = ["view", "staff", "crowd", "air", "noise", "path", "light", "entrance"]

ACTIVITIES = [
    "running", "swimming", "cooking", "reading", "painting", "gardening", "walking the dog",
    "riding a bike", "baking", "playing chess", "singing", "fishing", "camping", "dancing",
    "knitting", "hiking", "writing letters", "playing the piano", "cleaning the house",
    "learning a language", "taking photos", "doing yoga", "playing football",
]  # fmt: skip
ACTIVITY_ASPECTS = ["exercise", "rhythm", "practice", "routine", "effort", "pace"]

THINGS = [
    "the movie", "the book", "the concert", "the game", "the new car", "the class",
    "the show", "the trip", "the party", "the new job", "my new phone", "the holiday",
    "the play", "the song", "the meeting", "the lesson", "the festival", "the wedding",
    "the new chair", "the bus ride", "the weekend", "the birthday", "the dinner",
]  # fmt: skip
THING_ASPECTS = ["story", "music", "ending", "start", "sound", "design", "timing", "mood"]

POSITIVE_ADJECTIVES = [
    "good", "great", "wonderful", "lovely", "excellent", "pleasant", "delightful", "nice",
    "fantastic", "beautiful", "charming", "fresh", "bright", "calm", "cheerful", "perfect",
    "amazing", "enjoyable", "friendly", "warm", "superb", "brilliant", "splendid", "fun",
]  # fmt: skip
NEGATIVE_ADJECTIVES = [
    "bad", "awful", "terrible", "boring", "dull", "unpleasant", "horrible", "poor",
    "disappointing", "messy", "noisy", "cold", "bland", "ugly", "annoying", "dreadful",
    "miserable", "gloomy", "stale", "rude", "tiring", "dirty", "weak", "sad",
]  # fmt: skip
POSITIVE_FEELINGS = [
    "happy", "glad", "relaxed", "cheerful", "calm", "grateful", "joyful", "content",
    "excited", "proud", "hopeful", "refreshed",
]  # fmt: skip
NEGATIVE_FEELINGS = [
    "sad", "tired", "annoyed", "bored", "upset", "angry", "worried", "lonely",
    "disappointed", "frustrated", "gloomy", "uneasy",
]  # fmt: skip
FRIENDS = ["my friend", "my sister", "my brother", "my neighbour", "my mother", "my father"]
TIMES = ["yesterday", "last week", "this morning", "on Sunday", "last summer", "today"]

# How-to questions: each a fixed list of steps; answers pick a few and join them.
HOW_TO = {
    "make tea": [
        "boil fresh water", "warm the pot", "add one spoon of tea for each cup",
        "pour the water over the leaves", "wait three minutes", "add milk if you like",
    ],
    "plant a tree": [
        "choose a sunny spot", "dig a wide hole", "loosen the roots", "set the tree straight",
        "fill the hole with soil", "water it well",
    ],
    "clean a window": [
        "mix warm water with a little soap", "wipe the glass with a soft cloth",
        "rinse with clean water", "dry it with a paper towel", "polish the corners",
    ],
    "bake bread": [
        "mix flour, water, salt and yeast", "knead the dough for ten minutes",
        "let it rise for an hour", "shape the loaf", "bake it in a hot oven",
        "let it cool before cutting",
    ],
    "save money": [
        "write down what you spend", "cook at home more often", "set a small weekly goal",
        "put coins in a jar", "wait a day before buying things",
    ],
    "sleep better": [
        "go to bed at the same time", "keep the room dark and cool", "put the phone away",
        "drink less coffee", "read a calm book",
    ],
    "learn to swim": [
        "start in shallow water", "practise floating", "kick with straight legs",
        "breathe out under the water", "take lessons with a teacher",
    ],
    "make a salad": [
        "wash the leaves", "cut tomatoes and cucumber", "add some cheese",
        "mix oil with lemon juice", "toss everything together",
    ],
    "write a letter": [
        "start with a kind greeting", "say why you are writing", "keep the sentences short",
        "end with your best wishes", "sign your name",
    ],
    "care for a cat": [
        "give it fresh water every day", "feed it at the same times", "brush its fur",
        "clean the litter box", "play with it in the evening",
    ],
}  # fmt: skip

FIRST = ["First", "To begin"]
THEN = ["Then", "Next", "After that"]
LAST = ["Finally", "At the end"]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _topic(rng: random.Random) -> tuple[str, str, list[str]]:
    """(kind, name, aspects) of a random topic."""
    kind = rng.choice(["food", "place", "activity", "thing"])
    names, aspects = {
        "food": (FOODS, FOOD_ASPECTS),
        "place": (PLACES, PLACE_ASPECTS),
        "activity": (ACTIVITIES, ACTIVITY_ASPECTS),
        "thing": (THINGS, THING_ASPECTS),
    }[kind]
    return kind, rng.choice(names), aspects


def _question(rng: random.Random, kind: str, name: str) -> str:
    templates = {
        "food": [
            "What do you think of {x}?", "Should I try {x}?", "How was {x}?",
            "Did you like {x}?", "How does {x} taste?", "Is {x} any good?",
        ],
        "place": [
            "Tell me about {x}.", "How was your day at {x}?", "Would you recommend {x}?",
            "What is {x} like?", "Did you enjoy {x}?", "How was the visit to {x}?",
        ],
        "activity": [
            "Do you like {x}?", "What is {x} like?", "How do you feel about {x}?",
            "Is {x} fun?", "Should I start {x}?", "How was {x} today?",
        ],
        "thing": [
            "How was {x}?", "What did you think of {x}?", "How do you feel about {x}?",
            "Can you describe {x}?", "Did you enjoy {x}?", "Was {x} worth it?",
        ],
    }[kind]  # fmt: skip
    return rng.choice(templates).format(x=name)


def _opinion(rng: random.Random, kind: str, name: str, aspects: list[str], positive: bool) -> str:
    """Two or three sentences, all warm or all sour."""
    adjectives = POSITIVE_ADJECTIVES if positive else NEGATIVE_ADJECTIVES
    feelings = POSITIVE_FEELINGS if positive else NEGATIVE_FEELINGS
    a, b, c = rng.sample(adjectives, 3)
    aspect = rng.choice(aspects)
    openers = [
        f"I think {name} is {a}.",
        f"{_cap(name)} was {a} and {b}.",
        f"Honestly, {name} was {a}.",
        f"In my opinion {name} is {a}.",
        f"{_cap(name)} is {a}, really {b}.",
    ]
    if positive:
        openers += [f"I love {name}.", f"I really enjoyed {name}."]
        closers = [
            "I would happily do it again.", "I would recommend it to anyone.",
            f"{_cap(rng.choice(FRIENDS))} loved it too.", "It was worth every minute.",
            "I hope to go back soon.", "Thank you for asking.",
        ]  # fmt: skip
    else:
        openers += [f"I did not like {name}.", f"I really disliked {name}."]
        closers = [
            "I would not do it again.", "I would not recommend it.",
            f"{_cap(rng.choice(FRIENDS))} hated it too.", "It was a waste of time.",
            "I do not want to go back.", "Sorry, but that is the truth.",
        ]  # fmt: skip
    middles = [
        f"The {aspect} was {c}.",
        f"It made me feel {rng.choice(feelings)}.",
        f"The {aspect} made me feel {rng.choice(feelings)}.",
    ]
    if kind == "place":
        middles.append(f"I went there {rng.choice(TIMES)} and felt {rng.choice(feelings)}.")
    sentences = [rng.choice(openers), rng.choice(middles)]
    if rng.random() < 0.6:
        sentences.append(rng.choice(closers))
    return " ".join(sentences)


def _mixed(rng: random.Random, name: str, aspects: list[str]) -> str:
    good_aspect, bad_aspect = rng.sample(aspects, 2)
    good, bad = rng.choice(POSITIVE_ADJECTIVES), rng.choice(NEGATIVE_ADJECTIVES)
    if rng.random() < 0.5:
        return (
            f"{_cap(name)} was mixed. The {good_aspect} was {good}, but the {bad_aspect} was {bad}."
        )
    return f"The {bad_aspect} of {name} was {bad}, but the {good_aspect} was {good}."


def _how_to(rng: random.Random) -> tuple[str, str]:
    task = rng.choice(list(HOW_TO))
    steps = HOW_TO[task]
    n = rng.randint(3, min(4, len(steps)))
    chosen = sorted(rng.sample(range(len(steps)), n))
    parts = [f"{rng.choice(FIRST)}, {steps[chosen[0]]}."]
    parts += [f"{rng.choice(THEN)}, {steps[i]}." for i in chosen[1:-1]]
    parts.append(f"{rng.choice(LAST)}, {steps[chosen[-1]]}.")
    question = rng.choice(
        ["How do I {t}?", "What is the best way to {t}?", "Can you tell me how to {t}?"]
    )
    return question.format(t=task), " ".join(parts)


def _weather(rng: random.Random) -> tuple[str, str]:
    question = rng.choice(["How is the weather today?", "What was the weather like?"])
    positive = rng.random() < 0.5
    sky = rng.choice(
        ["sunny", "clear", "bright", "warm"] if positive else ["rainy", "grey", "windy", "cold"]
    )
    adjective = rng.choice(POSITIVE_ADJECTIVES if positive else NEGATIVE_ADJECTIVES)
    feeling = rng.choice(POSITIVE_FEELINGS if positive else NEGATIVE_FEELINGS)
    answer = f"It is {sky} and {adjective}. I feel {feeling}."
    return question, answer


def example(rng: random.Random) -> tuple[str, str]:
    """One (question, answer)."""
    roll = rng.random()
    if roll < 0.10:
        return _how_to(rng)
    if roll < 0.15:
        return _weather(rng)
    kind, name, aspects = _topic(rng)
    question = _question(rng, kind, name)
    if roll < 0.23:
        return question, _mixed(rng, name, aspects)
    return question, _opinion(rng, kind, name, aspects, positive=rng.random() < 0.5)


def make_corpus(*, target_bytes: int, seed: int) -> str:
    rng = random.Random(seed)
    chunks: list[str] = []
    size = 0
    while size < target_bytes:
        question, answer = example(rng)
        chunk = f"Question: {question}\nAnswer: {answer}\n\n"
        chunks.append(chunk)
        size += len(chunk.encode())
    return "".join(chunks)


def make_prompts(*, n: int, seed: int) -> str:
    """n distinct prompts "Question: ...\\nAnswer:", separated by blank lines."""
    rng = random.Random(seed)
    seen: list[str] = []
    while len(seen) < n:
        roll = rng.random()
        if roll < 0.1:
            question = _how_to(rng)[0]
        else:
            kind, name, _ = _topic(rng)
            question = _question(rng, kind, name)
        if question not in seen:
            seen.append(question)
    return "".join(f"Question: {q}\nAnswer:\n\n" for q in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=220_000, help="corpus size to reach")
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = make_corpus(target_bytes=args.bytes, seed=args.seed)
    (HERE / "corpus.txt").write_text(corpus, encoding="utf-8")
    (HERE / "prompts.txt").write_text(
        make_prompts(n=args.prompts, seed=args.seed + 1), encoding="utf-8"
    )
    print(f"wrote {len(corpus.encode())} bytes to {HERE / 'corpus.txt'}, {args.prompts} prompts")


if __name__ == "__main__":
    main()
