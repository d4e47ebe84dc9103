def test_create_and_read_back_an_event(testapp):
    body = {
        "event": {
            "name": "Concert",
            "venue": "Stadium",
            "date": "2030-07-15T18:00:00Z",
            "ticket_price": "50.00",
            "total_tickets": 100,
        }
    }
    created = testapp.post_json("/api/events", body, status=201)
    assert created.location.endswith(created.json["data"]["id"])
    fetched = testapp.get(created.location, status=200)
    assert fetched.json["data"] == created.json["data"]
