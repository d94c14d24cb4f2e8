import json

from edge.protocol import ota

BODY = {
    "version": 2,
    "minimum_free_heap_size": "8318916",
    "mac_address": "a0:85:e3:f4:49:34",
    "application": {"version": "1.6.6"},
    "board": {"type": "bread-compact-wifi"},
}


def test_request_from_firmware() -> None:
    req = ota.parse_request(
        {"device-id": "a0:85:e3:f4:49:34", "Client-Id": "u-1", "User-Agent": "b/1.6.6"},
        json.dumps(BODY).encode(),
    )
    assert req.device_id == "a0:85:e3:f4:49:34" and req.client_id == "u-1"
    assert req.firmware_version == "1.6.6" and req.board_type == "bread-compact-wifi"


def test_malformed_bodies_still_give_a_request() -> None:
    for body in (b"", b"{not json", b"[1]", b'{"application": 5}', b"\xff\xfe"):
        req = ota.parse_request({}, body)
        assert req.device_id == "" and req.firmware_version == ""


def test_response_shape() -> None:
    req = ota.parse_request({}, json.dumps(BODY).encode())
    answer = ota.response(
        req,
        websocket_url="ws://10.0.0.2:8000/xiaozhi/v1/",
        token="",
        protocol_version=3,
        now_ms=1_760_000_000_000,
        timezone_offset_min=480,
    )
    assert answer["websocket"] == {
        "url": "ws://10.0.0.2:8000/xiaozhi/v1/",
        "token": "",
        "version": 3,
    }
    assert answer["firmware"] == {"version": "1.6.6", "url": ""}
    assert answer["server_time"] == {"timestamp": 1_760_000_000_000, "timezone_offset": 480}
    assert "mqtt" not in answer and "activation" not in answer
