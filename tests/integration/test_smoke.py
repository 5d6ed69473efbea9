from tests.builders import auth_headers


async def test_health_and_auth_required(client, app):
    r = await client.get("/healthz")
    assert r.json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == "ok"
    r = await client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    headers = await auth_headers(app)
    assert headers["Authorization"].startswith("Bearer fd_")
