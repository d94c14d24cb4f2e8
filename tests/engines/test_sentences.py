from edge.sentences import SentenceSplitter, clean_for_speech, ends_sentence


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
    assert s.push(" is Paris, of course.") == ["as you know, is Paris, of course."]
    assert s.push(" Yes") == []
    assert s.finish() == ["Yes"]


def test_a_sentence_is_released_at_its_stop() -> None:
    # Not a model step later, when the space after the stop is written.
    s = SentenceSplitter()
    assert s.push("The capital of France is") == []
    assert s.push(" Paris.") == ["The capital of France is Paris."]
    assert s.push(" It is") == []
    assert s.push(" 2,000 years old!") == ["It is 2,000 years old!"]
    assert s.push(" Pi is 3.") == []  # may become 3.14
    assert s.push("14.") == []  # a number's stop waits for what follows
    assert s.push(" Yes.") == ["Pi is 3.14.", "Yes."]


def test_an_abbreviation_does_not_end_a_sentence() -> None:
    assert split(["The tallest is Mt.", " Everest, in Nepal.", " Ask Dr. Who", " now."]) == [
        "The tallest is Mt. Everest,",  # the first clause
        "in Nepal.",
        "Ask Dr. Who now.",
    ]
    assert split(
        ["Yes.", " Fruit, e.", "g. apples, is good.", " We", " meet at 5 p.m.", " today."]
    ) == [
        "Yes.",
        "Fruit, e.g. apples, is good.",
        "We meet at 5 p.m. today.",
    ]
    s = SentenceSplitter()
    assert s.push("He lives in the U.S.") == []  # the stop may belong to the abbreviation
    assert s.finish() == ["He lives in the U.S."]


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


def test_a_pause_completes_only_a_finished_sentence() -> None:
    # The model paused for another device: what it wrote so far is spoken only if it ends a
    # sentence (a sentence ended by a stop after a word was spoken at once).
    for unfinished in ("Pi is 3.", "The capital of", "Ask Dr."):
        splitter = SentenceSplitter()
        assert splitter.push(unfinished) == []
        assert splitter.complete() == []
    splitter = SentenceSplitter()
    assert splitter.push("今天天气很好！") == ["今天天气很好！"]  # a CJK stop needs no space
    assert splitter.complete() == []


def test_where_a_sentence_ends_for_the_model_s_pauses_too() -> None:
    # The same rule tells the model where a long answer may give its place up to another
    # device: only where the speaker has a whole sentence to say meanwhile.
    for ended in ("It is Paris.", "Really?!", "It costs 5!", "好的。", 'He said "no."', "Dr.\n"):
        assert ends_sentence(ended), ended
    for unfinished in ("It is 3.", "Ask Dr.", "In the U.S.", "It is", "Well,"):
        assert not ends_sentence(unfinished), unfinished
