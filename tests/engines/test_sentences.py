from edge.engines.sentences import SentenceSplitter, clean_for_speech


def split(pieces: list[str]) -> list[str]:
    s = SentenceSplitter()
    out: list[str] = []
    for piece in pieces:
        out += s.push(piece)
    return out + s.finish()


def test_sentences_from_tokens() -> None:
    assert split(["Paris is", " lovely. It has", " 2.1 million people! Bye"]) == [
        "Paris is lovely.",
        "It has 2.1 million people!",
        "Bye",
    ]


def test_first_clause_is_released_early() -> None:
    s = SentenceSplitter()
    assert s.push("Well, ") == []  # too short to be worth speaking alone
    assert s.push("the capital of France, as you know,") == ["Well, the capital of France,"]
    assert s.push(" is Paris, of course.") == []  # "course." may yet become "course.5"
    assert s.push(" Yes") == ["as you know, is Paris, of course."]
    assert s.finish() == ["Yes"]


def test_cjk() -> None:
    assert split(["你好，", "我是小智。", "今天天气很好！再见"]) == [
        "你好，我是小智。",
        "今天天气很好！",
        "再见",
    ]
    assert split(["今天北京的天气", "很好，", "适合出去走走。"]) == [
        "今天北京的天气很好，",
        "适合出去走走。",
    ]


def test_markdown_and_emoji_are_not_spoken() -> None:
    assert clean_for_speech("**Sure!** 😊 Here's a [link](http://x).") == "Sure! Here's a link."
    assert split(["🙂", " ** "]) == []


def test_a_pause_completes_a_sentence_without_the_space_after_it() -> None:
    # The model paused for another device right after the stop: speak the sentence now.
    splitter = SentenceSplitter()
    assert splitter.push("The capital of France is Paris.") == []
    assert splitter.complete() == ["The capital of France is Paris."]
    assert splitter.push(" It is big.") == [] and splitter.finish() == ["It is big."]
    # Not a sentence end: a number, or no stop at all.
    for unfinished in ("Pi is 3.", "The capital of"):
        splitter = SentenceSplitter()
        splitter.push(unfinished)
        assert splitter.complete() == []
    splitter = SentenceSplitter()
    splitter.push("今天天气很好！")
    assert splitter.complete() == []  # a CJK stop needs no space: already spoken
