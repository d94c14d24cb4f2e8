from edge.session.state import TurnState, TurnStateMachine


def test_auto_turn_cycle() -> None:
    t = TurnStateMachine()
    assert t.listen_start("auto") and t.state == TurnState.LISTENING and t.hears_user
    assert t.utterance_end() and t.state == TurnState.THINKING and not t.hears_user
    assert t.speaking_started() and t.state == TurnState.SPEAKING and not t.hears_user
    assert t.reply_done() == TurnState.LISTENING


def test_manual_turn_ends_idle() -> None:
    t = TurnStateMachine()
    t.listen_start("manual")
    assert not t.utterance_end() or t.state == TurnState.THINKING
    t = TurnStateMachine()
    t.listen_start("manual")
    assert t.listen_stop() and t.state == TurnState.THINKING
    t.speaking_started()
    assert t.reply_done() == TurnState.IDLE


def test_realtime_hears_the_user_while_speaking() -> None:
    t = TurnStateMachine()
    t.listen_start("realtime")
    t.utterance_end()
    t.speaking_started()
    assert t.hears_user
    assert t.utterance_end() and t.state == TurnState.THINKING  # barge-in utterance


def test_listen_start_during_a_reply_keeps_the_reply() -> None:
    t = TurnStateMachine()
    assert t.text_query()  # `listen detect` with a phrase
    assert not t.listen_start("auto")  # the firmware's listen start right after detect
    assert t.state == TurnState.THINKING and t.mode == "auto"


def test_events_that_do_not_apply_change_nothing() -> None:
    t = TurnStateMachine()
    assert not t.utterance_end() and t.state == TurnState.IDLE
    assert not t.listen_stop() and t.state == TurnState.IDLE
    assert not t.abort()
    t.listen_start("auto")
    t.utterance_end()
    assert not t.text_query() and t.state == TurnState.THINKING
    t.speaking_started()
    assert not t.speaking_started() and t.abort()


def test_server_initiated_speech_from_idle() -> None:
    t = TurnStateMachine()
    assert t.text_query() and t.speaking_started()
    assert t.reply_done() == TurnState.LISTENING
