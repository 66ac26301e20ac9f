"""Notes in any language: Chinese and Japanese found inside sentences (character bigrams),
Hindi words whole with their vowel signs, accented Latin words matched without accents, and
a CJK question answered, not declined for its bigrams; a question the notes do not cover
still declined. Real model, real index."""

from __future__ import annotations

import pytest

from rag.answer.pipeline import ask
from rag.index.build import update_index
from rag.index.lexical import is_cjk, tokenize
from rag.index.store import load_index
from rag.search.engine import Engine

NOTES = {
    "japan.md": "# 旅行メモ\n\n## 東京\n\n- 東京タワーの高さは333メートルです。\n"
    "- 浅草寺は東京で最も古い寺です。\n\n## 大阪\n\n- 大阪城は豊臣秀吉が建てました。\n",
    "beijing.md": "# 北京笔记\n\n## 故宫\n\n- 故宫有九千多间房屋，是明清两代的皇宫。\n",
    "food.md": "# Cuisine\n\n## Café culture\n\n- A café crème is an espresso with cream.\n"
    "- The crêpe stand opens at nine.\n",
    "india.md": "# यात्रा नोट्स\n\n## दिल्ली\n\n- लाल किला दिल्ली में है।\n"
    "- कुतुब मीनार की ऊंचाई 73 मीटर है।\n",
}


def test_cjk_runs_become_bigrams_and_accents_fold():
    assert tokenize("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert tokenize("的") == ["的"]  # one character: itself
    assert tokenize("AWS的S3服务") == ["的", "服务", "aws", "s3"]
    assert tokenize("Café crème, naïve") == ["cafe", "creme", "naive"]
    assert tokenize("서울특별시") == ["서울", "울특", "특별", "별시"]
    assert is_cjk("東京") and not is_cjk("cafe") and not is_cjk("s3")
    # A vowel sign is a mark, not a letter: the word keeps it (\w+ cut हिन्दी into ह न द).
    assert tokenize("हिन्दी भाषा, தமிழ்") == ["हिन्दी", "भाषा", "தமிழ்"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder) -> Engine:
    base = tmp_path_factory.mktemp("languages")
    for name, text in NOTES.items():
        (base / "notes").mkdir(exist_ok=True)
        (base / "notes" / name).write_text(text, encoding="utf-8")
    update_index(base / "notes", base / "index", embedder, 200)
    return Engine(load_index(base / "index", embedder.name, embedder.dim, 200), embedder)


@pytest.mark.parametrize(
    ("question", "path", "line"),
    [
        ("東京タワーの高さは", "japan.md", 5),  # "how tall is Tokyo Tower"
        ("大阪城を建てたのは誰", "japan.md", 10),  # "who built Osaka Castle"
        ("故宫有多少间房屋", "beijing.md", 5),  # "how many rooms has the Forbidden City"
        ("cafe creme", "food.md", 5),
        ("crepe stand hours", "food.md", 6),
        ("कुतुब मीनार की ऊंचाई", "india.md", 6),  # "the height of Qutub Minar"
    ],
)
def test_questions_in_any_language_cite_the_right_line(engine, question, path, line):
    hits = engine.search(question, k=1, mode="bm25")
    assert (hits[0].chunk.path, hits[0].chunk.start_line <= line <= hits[0].chunk.end_line) == (
        path,
        True,
    )
    answer = ask(engine, question)
    assert answer.status == "answered", (answer.status, answer.missing)
    assert (answer.citations[0].path, answer.citations[0].start_line) == (path, line)


def test_a_cjk_question_the_notes_do_not_cover_is_declined(engine):
    answer = ask(engine, "北海道の冬は寒いですか")  # "is Hokkaido cold in winter?"
    assert answer.status == "not_found"
