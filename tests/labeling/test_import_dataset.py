"""manage.py import_dataset: a Hugging Face dataset (save_to_disk's directory, a
directory of data files, a Parquet file) into a text project, each usual column mapping,
all or nothing, a second run storing nothing, and errors that say what is wrong."""

from __future__ import annotations

import io

import datasets
import pytest
from django.core.management import CommandError, call_command

from labeling.models import Comparison, Item, Judgement

HUMAN = "\n\nHuman: Where is Paris?\n\nAssistant:"


@pytest.fixture
def project(make_project):
    return make_project("chat")


@pytest.fixture
def importer(make_user):
    return make_user("curator", staff=True)


def _run(path, *args, project="chat") -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dataset", str(path), "--project", project, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _saved(tmp_path, rows: list[dict], name="saved"):
    path = tmp_path / name
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _user(text):
    return {"role": "user", "content": text}


def _bot(text):
    return {"role": "assistant", "content": text}


# --- formats and column mappings -------------------------------------------------------------
def test_a_saved_dataset_of_judged_pairs_becomes_judgements_and_a_second_run_skips_it(
    project, importer, tmp_path
):
    path = _saved(
        tmp_path,
        [
            {"prompt": "p1", "chosen": "good", "rejected": "bad", "score": 1.0},
            {"prompt": "p2", "chosen": "fine", "rejected": "worse", "score": 2.0},
        ],
    )

    out, err = _run(path, "--importer", "curator")

    assert "ignoring score" in out
    assert "2 comparisons" in out and "4 items" in out and "2 judgements" in out
    assert "2/2" in err  # the progress bar
    judgement = Judgement.objects.get(comparison__items__text="good")
    assert [Item.objects.get(pk=pk).text for pk in judgement.ranking] == ["good", "bad"]
    assert judgement.annotator == importer and judgement.source == "import"

    out, _ = _run(path, "--importer", "curator")

    assert "0 items, 0 comparisons, 0 judgements; 2 skipped as imported before" in out
    assert Comparison.objects.count() == 2


def test_a_parquet_file_of_prompts_and_responses_gives_comparisons_to_judge(project, tmp_path):
    path = tmp_path / "rank.parquet"
    datasets.Dataset.from_list(
        [
            {"prompt": "rank", "responses": ["a", "b", "c"]},
            {"prompt": "pair", "responses": ["x", "y"]},
        ]
    ).to_parquet(str(path))

    _run(path)

    ranking = Comparison.objects.get(items__text="a")
    assert list(ranking.slots.values_list("item__text", flat=True)) == ["a", "b", "c"]
    assert ranking.status == Comparison.Status.OPEN and not Judgement.objects.exists()


def test_message_lists_with_an_explicit_prompt_are_a_conversation(project, importer, tmp_path):
    prompt = [{"role": "system", "content": "Be brief."}, _user("Hi?")]
    path = _saved(
        tmp_path,
        [{"prompt": prompt, "chosen": [_bot("Hello.")], "rejected": [_bot("Go away.")]}],
    )

    _run(path, "--importer", "curator")

    chosen = Item.objects.get(text="Hello.")
    assert chosen.prompt_messages == prompt and chosen.messages == [_bot("Hello.")]


def test_without_a_prompt_the_messages_chosen_and_rejected_share_are_the_prompt(
    project, importer, tmp_path
):
    shared = [_user("Hi"), _bot("Hello!"), _user("Tell me a joke")]
    path = _saved(
        tmp_path,
        [{"chosen": [*shared, _bot("A pun.")], "rejected": [*shared, _bot("No.")]}],
    )

    _run(path, "--importer", "curator")

    item = Item.objects.get(text="A pun.")
    assert item.prompt_messages == shared and item.messages == [_bot("A pun.")]


def test_a_string_prompt_beside_whole_conversations_is_taken_from_them(
    project, importer, tmp_path
):  # as UltraFeedback binarized holds them
    path = _saved(
        tmp_path,
        [
            {
                "prompt": "Hi?",
                "chosen": [_user("Hi?"), _bot("Hello.")],
                "rejected": [_user("Hi?"), _bot("Go.")],
                "messages": [_user("Hi?"), _bot("Hello.")],
            }
        ],
    )

    _run(path, "--importer", "curator")

    item = Item.objects.get(text="Go.")
    assert item.prompt_messages == [_user("Hi?")] and item.messages == [_bot("Go.")]


def test_without_a_prompt_the_text_chosen_and_rejected_share_is_the_prompt(
    project, importer, tmp_path
):  # as Anthropic's hh-rlhf holds them
    path = _saved(tmp_path, [{"chosen": f"{HUMAN} In France.", "rejected": f"{HUMAN} Nowhere."}])

    _run(path, "--importer", "curator")

    item = Item.objects.get(text=" In France.")
    assert item.prompt == HUMAN and item.prompt_messages is None


def test_conversations_sharing_their_turns_before_the_last_become_one_comparison(project, tmp_path):
    first, second = [_user("Hi")], [_user("Hi"), _bot("Hello"), _user("Joke?")]
    path = _saved(
        tmp_path,
        [
            {"messages": [*first, _bot("a")]},
            {"messages": [*second, _bot("pun")]},
            {"messages": [*first, _bot("b")]},
            {"messages": [*second, _bot("no")]},
            {"messages": [*first, _bot("c"), _bot("c, again")]},
        ],
    )

    out, _ = _run(path)

    assert "2 comparisons" in out and "5 items" in out
    three = Comparison.objects.get(items__text="a")
    assert list(three.slots.values_list("item__text", flat=True)) == ["a", "b", "c, again"]
    assert Item.objects.get(text="c, again").messages == [_bot("c"), _bot("c, again")]
    assert Item.objects.get(text="pun").prompt_messages == second


def test_a_directory_of_parquet_files_is_read_by_split(project, tmp_path):
    (tmp_path / "data").mkdir()
    for split, text in (("train", "t"), ("test", "e")):
        datasets.Dataset.from_list(
            [{"prompt": split, "responses": [f"{text}1", f"{text}2"]}]
        ).to_parquet(str(tmp_path / "data" / f"{split}-00000-of-00001.parquet"))

    _run(tmp_path, "--split", "test")

    assert list(Item.objects.values_list("prompt", flat=True)) == ["test", "test"]
    _run(tmp_path)  # train, the default
    assert Item.objects.filter(prompt="train").count() == 2


def test_a_saved_dataset_dict_takes_split(project, tmp_path):
    rows = [{"prompt": "p", "responses": ["a", "b"]}]
    path = tmp_path / "dict"
    datasets.DatasetDict(
        {"validation": datasets.Dataset.from_list(rows), "extra": datasets.Dataset.from_list(rows)}
    ).save_to_disk(str(path))

    with pytest.raises(CommandError, match="no split 'train'; it has validation, extra"):
        _run(path)
    _run(path, "--split", "validation")

    assert Comparison.objects.count() == 1


# --- errors ----------------------------------------------------------------------------------
def test_a_bad_row_is_named_with_its_field_and_nothing_is_stored(project, importer, tmp_path):
    path = _saved(
        tmp_path,
        [
            {"prompt": "p1", "chosen": "good", "rejected": "bad"},
            {"prompt": "p2", "chosen": "", "rejected": "bad"},
        ],
    )

    with pytest.raises(CommandError, match=r"row 1: 'chosen' must be a non-empty string"):
        _run(path, "--importer", "curator")
    assert not Item.objects.exists() and not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"messages": [_user("Hi"), _bot("a")]}, {"messages": [_bot("b"), _user("Hi")]}],
            r"row 1: messages\[1\].role: the final turn must be the assistant's response",
        ),
        (
            [{"messages": [_user("Hi"), _bot("a")]}, {"messages": [_user("Ho"), _bot("b")]}],
            r"row 0: messages: 1 rows end the same conversation with a response; a comparison "
            "takes 2 to 8",
        ),
        (
            [{"messages": [_user("Hi"), _bot("a")]}, {"messages": [_user("Hi"), _bot(" ")]}],
            r"row 1: messages\[1\].content: must be a non-empty string",
        ),
        (
            [{"messages": [{"role": "robot", "content": "x"}, _bot("a")]}],
            r"row 0: messages\[0\].role: must be one of system, user, assistant; got 'robot'",
        ),
        (
            [{"prompt": "p", "responses": ["a", "a"]}],
            r"row 0: 'responses' must be distinct",
        ),
    ],
)
def test_a_bad_conversation_or_ranking_row_is_named(project, tmp_path, rows, message):
    with pytest.raises(CommandError, match=message):
        _run(_saved(tmp_path, rows))
    assert not Item.objects.exists()


def test_judged_pairs_need_an_importer(project, tmp_path):
    path = _saved(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "b"}])

    with pytest.raises(CommandError, match="--importer USERNAME"):
        _run(path)
    with pytest.raises(CommandError, match="No user 'nobody'"):
        _run(path, "--importer", "nobody")


def test_a_dataset_without_columns_to_import_is_refused(project, tmp_path):
    path = _saved(tmp_path, [{"question": "q", "answer": "a"}])

    with pytest.raises(CommandError, match="no columns to import; it has question, answer"):
        _run(path)


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: tmp / "missing", "No file or directory"),
        (lambda tmp: tmp, "holds no dataset"),
        (
            lambda tmp: (tmp / "notes.txt").write_text("x") and tmp / "notes.txt",
            "expected a Parquet",
        ),
    ],
)
def test_a_path_that_holds_no_dataset_is_refused(project, tmp_path, make_path, message):
    with pytest.raises(CommandError, match=message):
        _run(make_path(tmp_path))


def test_an_unknown_or_trajectory_project_is_refused(make_project, tmp_path):
    path = _saved(tmp_path, [{"prompt": "p", "responses": ["a", "b"]}])
    make_project("segments", kind="trajectory")

    with pytest.raises(CommandError, match="No project 'nope'"):
        _run(path, project="nope")
    with pytest.raises(CommandError, match="trajectory project; import_dataset is for text"):
        _run(path, project="segments")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": [_bot("a")], "rejected": [_bot("b")]}, "begin with no common user turn"),
        ({"chosen": "In France.", "rejected": "Nowhere."}, "begin with no common text"),
    ],
)
def test_a_pair_without_a_prompt_to_find_is_named(project, importer, tmp_path, row, message):
    with pytest.raises(CommandError, match=f"row 0: chosen, rejected: .*{message}"):
        _run(_saved(tmp_path, [row]), "--importer", "curator")
