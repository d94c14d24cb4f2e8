"""Who is connecting: headers first, then the query parameters browser clients use."""

from __future__ import annotations

from websockets.datastructures import Headers

from edge.transport.identity import identify


def test_headers_name_the_device_case_insensitively() -> None:
    headers = Headers(
        {
            "device-id": "AA:BB:CC:00:00:01",
            "Client-Id": "c1",
            "protocol-version": "3",
            "Authorization": "Bearer secret",
        }
    )
    who = identify("/xiaozhi/v1/", headers, "10.0.0.5:4000")
    assert (who.device_id, who.client_id, who.protocol_version, who.token) == (
        "aa:bb:cc:00:00:01",
        "c1",
        3,
        "secret",
    )
    assert who.label == "aa:bb:cc:00:00:01"


def test_browser_clients_use_the_query_string() -> None:
    path = "/xiaozhi/v1/?device_id=aa:01&client_id=web&protocol_version=2&authorization=Bearer%20t"
    who = identify(path, Headers(), "10.0.0.5:4000")
    assert (who.device_id, who.client_id, who.protocol_version, who.token) == (
        "aa:01",
        "web",
        2,
        "t",
    )


def test_odd_values_are_read_as_absent_not_as_errors() -> None:
    for version in ("-1", "1.0", "", "x9"):
        who = identify("/", Headers({"Protocol-Version": version}), "p")
        assert who.protocol_version is None, version
    for digit in ("%C2%B2", "%D9%A3"):  # "²" and "٣" pass str.isdigit(), not int()
        assert identify(f"/?protocol_version={digit}", Headers(), "p").protocol_version is None
    assert identify("/", Headers({"Authorization": "Bearer "}), "p").token == ""
    assert identify("/", Headers({"Authorization": "Bearer"}), "p").token == ""
    assert identify("/", Headers(), "10.0.0.9:5").label == "anonymous@10.0.0.9:5"


def test_a_repeated_identity_header_is_named() -> None:
    from websockets.datastructures import Headers

    from edge.transport.identity import repeated_header

    twice = Headers([("Device-Id", "aa:00:00:00:00:01"), ("device-id", "aa:00:00:00:00:02")])
    assert repeated_header(twice.get_all) == "Device-Id"
    once = Headers([("Device-Id", "aa:00:00:00:00:01"), ("Client-Id", "c")])
    assert repeated_header(once.get_all) is None
