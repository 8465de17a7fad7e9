"""`roberta-prelayernorm serve`: real servers on localhost (uvicorn in a thread, or the command in a subprocess)
for tiny random models of every task, compared with the pipelines on the same inputs."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import roberta_prelayernorm as rp  # noqa: E402
from roberta_prelayernorm import allocator  # noqa: E402
from roberta_prelayernorm.pipelines import pipeline  # noqa: E402
from roberta_prelayernorm.serve.app import build_app  # noqa: E402
from roberta_prelayernorm.serve.engine import Batcher, Engine, Limits  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=66, type_vocab_size=1)  # inputs of at most 64 tokens
HEADS = {"text-classification": ("RobertaPreLayerNormForSequenceClassification", {0: "NEGATIVE", 1: "POSITIVE"}),
         "token-classification": ("RobertaPreLayerNormForTokenClassification",
                                  {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}),
         "question-answering": ("RobertaPreLayerNormForQuestionAnswering", None),
         "multiple-choice": ("RobertaPreLayerNormForMultipleChoice", None),
         "fill-mask": ("RobertaPreLayerNormForMaskedLM", None)}
TEXTS = ["What a great day", "The film was long, slow and in the end rather dull to watch.", "x",
         "Guido van Rossum lives in Amsterdam and Jim Henson in New York"]
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 12)  # over 64 tokens
CONTEXT = "Python was created by Guido van Rossum. The first release was in 1991 in Amsterdam."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A folder per task: a tiny random model with that head and a BPE tokenizer trained on the demo corpus."""
    import torch
    from training_utils import data

    from roberta_prelayernorm.tokenizer import train_byte_level_bpe

    with open(data("corpus.jsonl"), encoding="utf-8") as f:
        tokenizer = train_byte_level_bpe([json.loads(line)["text"] for line in f], vocab_size=600)
    root, folders = tmp_path_factory.mktemp("serve"), {}
    for task, (cls_name, id2label) in HEADS.items():
        torch.manual_seed(0)
        labels = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
        config = rp.RobertaPreLayerNormConfig(vocab_size=len(tokenizer), **TINY, **labels)
        folders[task] = str(root / task)
        getattr(rp, cls_name)(config).save_pretrained(folders[task])
        tokenizer.save_pretrained(folders[task])
    return folders


class Server:
    """A server for `engine` on a free localhost port, uvicorn in a thread; `stop()` shuts it down gracefully."""

    def __init__(self, engine, **options):
        self.app = build_app(engine, **options)
        self.url = f"http://127.0.0.1:{free_port()}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=int(self.url.rsplit(":", 1)[1]), log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server.started and httpx.get(self.url + "/health").status_code == 200):
            assert time.monotonic() < deadline, "the server did not become healthy in 30 s"
            time.sleep(0.05)

    def post(self, route, body, **kwargs):
        return httpx.post(self.url + route, json=body, timeout=30, **kwargs)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def servers(models):
    started = {task: Server(Engine(folder)) for task, folder in models.items()}
    yield started
    for server in started.values():
        server.stop()


def same(result):
    """A pipeline's result as JSON gives it back."""
    return json.loads(json.dumps(result))


def answered(response):
    assert response.status_code == 200, response.text
    return response.json()


# -- every route gives the pipeline's answer -------------------------------------------------------------------
def test_predict_equals_pipeline(servers, models):
    server = servers["text-classification"]
    classify = pipeline("text-classification", model=models["text-classification"])
    assert answered(server.post("/predict", {"inputs": TEXTS[0]})) == same(classify(TEXTS[0], top_k=None))
    assert answered(server.post("/predict", {"inputs": TEXTS})) == same(classify(TEXTS, top_k=None))
    pair = [{"text": "A man plays", "text_pair": "Someone plays"}]
    assert answered(server.post("/predict", {"inputs": [["A man plays", "Someone plays"]]})) == same(
        classify(pair, top_k=None))
    raw = answered(server.post("/predict", {"inputs": TEXTS[1], "raw_scores": True}))
    assert raw == same(classify(TEXTS[1], top_k=None, function_to_apply="none"))
    assert answered(server.post("/predict", {"inputs": LONG, "truncate": True})) == same(
        classify(LONG, top_k=None, truncation=True))


def test_tag_answer_choose_fill_mask_equal_pipelines(servers, models):
    ner = pipeline("ner", model=models["token-classification"], aggregation_strategy="simple")
    tagged = answered(servers["token-classification"].post("/tag", {"inputs": TEXTS}))
    assert tagged == same(ner(TEXTS, stride=0)) and any(tagged)
    assert answered(servers["token-classification"].post("/tag", {"inputs": LONG})) == same(ner(LONG, stride=0))
    tokens = answered(servers["token-classification"].post("/tag", {"inputs": TEXTS[3],
                                                                    "aggregation_strategy": "none"}))
    assert tokens == same(pipeline("ner", model=models["token-classification"])(TEXTS[3]))

    qa = pipeline("question-answering", model=models["question-answering"])
    question = {"question": "Who created Python?", "context": CONTEXT}
    assert answered(servers["question-answering"].post("/answer", {"inputs": question})) == same(qa(**question))
    both = [question, {"question": "When?", "context": CONTEXT}]
    assert answered(servers["question-answering"].post("/answer", {"inputs": both, "top_k": 2})) == same(
        qa(both, top_k=2))

    choose = pipeline("multiple-choice", model=models["multiple-choice"], truncation=True)
    prompt = {"prompt": "She opened the umbrella", "choices": ["because it rained.", "because it was dry.", "no"]}
    assert answered(servers["multiple-choice"].post("/choose", {"inputs": prompt})) == same(choose(**prompt))
    assert answered(servers["multiple-choice"].post("/choose", {"inputs": [prompt, prompt], "top_k": 1})) == same(
        choose([prompt, prompt], top_k=1))

    fill = pipeline("fill-mask", model=models["fill-mask"])
    texts = ["The capital of France is <mask>.", "A <mask> and a <mask> walk."]
    assert answered(servers["fill-mask"].post("/fill-mask", {"inputs": texts[0], "top_k": 3})) == same(
        fill(texts[0], top_k=3))
    assert answered(servers["fill-mask"].post("/fill-mask", {"inputs": texts})) == same(fill(texts))


def test_embed_tokenize_and_openai_embeddings(servers, models):
    import torch

    server = servers["text-classification"]
    model = rp.RobertaPreLayerNormModel.from_pretrained(models["text-classification"]).eval()
    tokenizer = rp.AutoTokenizer.from_pretrained(models["text-classification"])
    vectors = answered(server.post("/embed", {"inputs": TEXTS[:2], "pooling": "mean", "normalize": False}))
    cls = answered(server.post("/embed", {"inputs": TEXTS[1]}))
    with torch.no_grad():
        for text, vector, pooling in [(TEXTS[0], vectors[0], "mean"), (TEXTS[1], vectors[1], "mean"),
                                      (TEXTS[1], cls[0], "cls")]:
            hidden = model(torch.tensor([tokenizer(text)["input_ids"]])).last_hidden_state[0]
            expected = hidden.mean(0) if pooling == "mean" else torch.nn.functional.normalize(hidden[0], dim=0)
            assert torch.allclose(torch.tensor(vector), expected, atol=1e-5)
    openai = answered(server.post("/v1/embeddings", {"input": [TEXTS[1]], "model": "m"}))
    assert openai["data"][0]["embedding"] == cls[0] and openai["object"] == "list"
    assert openai["usage"]["prompt_tokens"] == len(tokenizer(TEXTS[1])["input_ids"])
    tokens = answered(server.post("/tokenize", {"inputs": "Hello world"}))[0]
    assert [t["id"] for t in tokens] == tokenizer("Hello world")["input_ids"]
    words = [t for t in tokens if not t["special"]]
    assert all(t["text"] == "Hello world"[t["start"]:t["stop"]] for t in words)  # spans leave spaces out
    assert "".join(t["text"] for t in words) == "Helloworld" and tokens[0] == {
        "id": 0, "token": "<s>", "text": "<s>", "special": True, "start": 0, "stop": 0}


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_serves(models, precision):
    import torch

    engine = Engine(models["text-classification"], precision=precision)
    server = Server(engine)
    try:
        info = answered(httpx.get(server.url + "/info"))
        assert info["precision"] == precision
        assert (info["int8_engine"] in torch.backends.quantized.supported_engines if precision == "int8"
                else info["int8_engine"] is None)
        got = answered(server.post("/predict", {"inputs": TEXTS}))
        expected = pipeline("text-classification", model=models["text-classification"])(TEXTS, top_k=None)
        for scores, reference in zip(got, expected):  # the same labels; scores near float32's
            assert {r["label"] for r in scores} == {"NEGATIVE", "POSITIVE"}
            assert sum(r["score"] for r in scores) == pytest.approx(1)
            assert {r["label"]: r["score"] for r in scores} == pytest.approx(
                {r["label"]: r["score"] for r in reference}, abs=0.05)
    finally:
        server.stop()


def test_bf16_on_a_cpu_without_its_kernels_warns(models, monkeypatch):
    from roberta_prelayernorm import cpu_linear
    from roberta_prelayernorm.serve import engine

    warned = []
    monkeypatch.setattr(engine.logger, "warning", lambda message, *args: warned.append(message))
    Engine(models["text-classification"], precision="fp32")
    monkeypatch.setattr(cpu_linear, "_bf16_supported", lambda: True)
    Engine(models["text-classification"], precision="bf16")
    assert warned == []
    monkeypatch.setattr(cpu_linear, "_bf16_supported", lambda: False)  # an AVX2-only CPU such as AMD Zen 3
    Engine(models["text-classification"], precision="bf16")
    assert len(warned) == 1 and "slower than fp32" in warned[0]


def test_info_health_and_wrong_task(servers):
    info = answered(httpx.get(servers["token-classification"].url + "/info"))
    assert info["task"] == "token-classification" and info["labels"][1] == "B-PER" and info["max_input_length"] == 64
    assert answered(httpx.get(servers["fill-mask"].url + "/health")) == {"status": "ok"}
    response = servers["fill-mask"].post("/predict", {"inputs": "x"})
    assert response.status_code == 404 and "fill-mask" in response.json()["error"]


# -- concurrency, overload, disconnects -----------------------------------------------------------------------
def test_concurrent_requests_of_different_lengths_each_get_their_own_answer(servers, models):
    classify = pipeline("text-classification", model=models["text-classification"])
    texts = [" ".join(LONG.split()[:n]) + f" {n}" for n in range(1, 15)] * 2

    async def main():
        async with httpx.AsyncClient(base_url=servers["text-classification"].url, timeout=30) as client:
            return await asyncio.gather(*[client.post("/predict", json={"inputs": text}) for text in texts])

    responses = asyncio.run(main())
    for text, response in zip(texts, responses):
        got, expected = answered(response), classify(text, top_k=None)
        # Batched with others, a row's floats may differ in the last bits from a batch of one.
        assert [r["label"] for r in got] == [r["label"] for r in expected]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-5)


def test_inputs_split_across_forwards_and_two_batchers(models):
    """A request's inputs run in several forwards (at most 3 sequences each), on two batcher threads, and come
    back together in order."""
    server = Server(Engine(models["token-classification"], limits=Limits(max_batch_size=3, batchers=2)))
    ner = pipeline("ner", model=models["token-classification"], aggregation_strategy="simple")
    requests = [[f"{text} {i}" for text in TEXTS + [LONG]] for i in range(8)]  # LONG: several windows

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*[client.post("/tag", json={"inputs": texts}) for texts in requests])

    try:
        for texts, response in zip(requests, asyncio.run(main())):
            got, expected = answered(response), ner(texts, stride=0)
            assert [[(e["entity_group"], e["start"], e["end"]) for e in entities] for entities in got] == [
                [(e["entity_group"], e["start"], e["end"]) for e in entities] for entities in expected]
            assert [e["score"] for entities in got for e in entities] == pytest.approx(
                [e["score"] for entities in expected for e in entities], abs=1e-5)
        pipe = server.app.state.engine.pipes["token-classification"]
        options = pipe.check_options({**pipe.raw_options, "aggregation_strategy": "simple", "stride": 0})
        sequences = sum(len(pipe.features(text, options)) for texts in requests for text in texts)
        assert sequences > 8 * len(requests[0])  # LONG is cut into windows
        assert metric(server, "serve_batch_sequences_sum") == sequences
        assert metric(server, "serve_batch_sequences_count") >= sequences / 3  # forwards of at most 3
    finally:
        server.stop()


def test_a_lone_forward_gets_every_thread_and_the_others_wait_for_it(models):
    """Two batchers sharing two threads: a forward of the first batcher with nothing else running or queued runs on
    both, as an offline pipeline call would, and one starting meanwhile waits for it; with work queued each runs on
    one. A forward of another batcher runs on its share even alone (a second pool of two threads on two cores makes
    libgomp stop spinning)."""
    import torch

    torch.set_num_threads(2)  # the one_thread fixture sets it back
    batcher = Batcher(Engine(models["text-classification"], limits=Limits(batchers=2)))
    assert (batcher.all_threads, batcher.share) == (2, 1)
    seen, inside, release = [], threading.Event(), threading.Event()

    def forward(name, first, hold=False):
        with batcher.torch_threads(first):
            seen.append((name, torch.get_num_threads()))
            inside.set()
            assert not hold or release.wait(10)

    first = threading.Thread(target=forward, args=("lone", True, True))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=forward, args=("next", False))
    second.start()
    time.sleep(0.3)
    assert seen == [("lone", 2)]  # the second waits for the wide forward
    release.set()
    first.join(10)
    second.join(10)
    assert seen == [("lone", 2), ("next", 1)]  # alone by then, but not the first batcher: its share
    forward("first again", True)
    assert seen[-1] == ("first again", 2)

    seen.clear()
    batcher.pending.append("queued work")
    with batcher.torch_threads(True):  # work waits: each forward on its share, running at once
        assert torch.get_num_threads() == 1
        overlapping = threading.Thread(target=forward, args=("overlapping", False))
        overlapping.start()
        overlapping.join(10)
    assert seen == [("overlapping", 1)]


def test_loading_leaves_no_openmp_threads_behind(models):
    """The model loads on a thread that ends, taking its OpenMP pool along (see on_passing_thread): a pool kept
    beside the first batcher's is one thread more than two cores, and libgomp then stops spinning between regions."""
    code = ("import os, sys, torch\n"
            "torch.set_num_threads(2)\n"
            "from roberta_prelayernorm.serve.engine import Engine\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "Engine(sys.argv[1], precision='int8')\n"
            "print(before, len(os.listdir('/proc/self/task')))")
    done = subprocess.run([sys.executable, "-c", code, models["text-classification"]], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert after == before


class Lone:
    """A job of one three-token feature, as Batcher.take sees jobs."""

    pipe, cancelled = "pipe", False

    def __init__(self, name):
        self.name, self.flat, self.waiting, self.done = name, [{"input_ids": [0, 1, 2]}], [0], threading.Event()


class CountingCondition(threading.Condition):
    """A Condition that counts the waits that came back, by thread name."""

    def __init__(self, lock):
        super().__init__(lock)
        self.woken = collections.Counter()

    def wait(self, timeout=None):
        try:
            return super().wait(timeout)
        finally:
            self.woken[threading.current_thread().name] += 1


def test_lone_requests_run_on_the_first_batcher_and_the_others_help_while_it_runs():
    """Lone requests taking turns between two batchers' OpenMP pools ran slower (each pool spins after its
    forward); so the first batcher takes them all, and a second one takes work only while a forward runs. Lone
    requests do not wake it either: it would take the GIL from the forward for nothing."""
    import types

    import torch

    torch.set_num_threads(2)  # lone forwards then take all the threads (the one_thread fixture sets it back)
    batcher = Batcher(types.SimpleNamespace(limits=Limits(batchers=2), warm_up=lambda: None))
    batcher.wake_others = others = CountingCondition(batcher.lock)
    ran, hold, held = [], threading.Event(), threading.Event()

    def execute(batch):
        job = batch[0][0]
        with batcher.torch_threads(threading.current_thread() is batcher.threads[0]):
            ran.append((job.name, threading.current_thread().name))
            if job.name == "held":
                held.set()
                assert hold.wait(10)
        job.done.set()

    batcher.execute = execute
    batcher.start()
    try:
        for number in range(6):
            job = Lone(f"lone {number}")
            batcher.submit(job)
            assert job.done.wait(10)
        assert {thread for _, thread in ran} == {"batcher-0"}
        assert others.woken["batcher-1"] == 0
        ran.clear()
        first, meanwhile = Lone("held"), Lone("meanwhile")
        batcher.submit(first)
        assert held.wait(10)
        batcher.submit(meanwhile)
        deadline = time.monotonic() + 10
        while batcher.pending and time.monotonic() < deadline:  # taken by the second: the first is held
            time.sleep(0.01)
        hold.set()
        assert first.done.wait(10) and meanwhile.done.wait(10)
        assert ran == [("held", "batcher-0"), ("meanwhile", "batcher-1")]
    finally:
        hold.set()
        batcher.stop()


class Gate:
    """Holds every forward of a pipeline until released, recording the lengths it ran."""

    def __init__(self, pipe):
        self.release, self.entered, self.lengths, forward = threading.Event(), threading.Event(), [], pipe.forward

        def held(batch):
            self.entered.set()
            self.lengths.append(batch["attention_mask"].sum(1).tolist())
            assert self.release.wait(30)
            return forward(batch)
        pipe.forward = held


def metric(server, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_overload_answers_429_then_recovers(models):
    server = Server(Engine(models["text-classification"], limits=Limits(max_concurrent_requests=1)))
    try:
        gate = Gate(server.app.state.engine.pipes["text-classification"])
        first = []
        thread = threading.Thread(target=lambda: first.append(server.post("/predict", {"inputs": TEXTS[0]})))
        thread.start()
        assert gate.entered.wait(10)
        for body in ({"inputs": TEXTS[1]}, {"inputs": TEXTS}):  # a batch request is refused like a single one
            response = server.post("/predict", body)
            assert response.status_code == 429 and response.headers["retry-after"] == "1"
            assert "--max-concurrent-requests" in response.json()["error"]
        tokenized = server.post("/tokenize", {"inputs": "Hello world"})  # it takes a slot as a model request does
        assert tokenized.status_code == 429 and "--max-concurrent-requests" in tokenized.json()["error"]
        gate.release.set()
        thread.join(10)
        assert first[0].status_code == 200
        assert server.post("/predict", {"inputs": TEXTS[1]}).status_code == 200
        assert server.post("/tokenize", {"inputs": "Hello world"}).status_code == 200  # its slot given back
        assert metric(server, 'serve_requests_total{route="/predict",status="429"}') == 2
        assert metric(server, "serve_requests_in_flight") == 0
    finally:
        server.stop()


def test_client_disconnect_drops_its_queued_work(models):
    # One batcher: held in its forward, it leaves the next request queued (a second would take it).
    server = Server(Engine(models["text-classification"], limits=Limits(batchers=1)))
    try:
        gate = Gate(server.app.state.engine.pipes["text-classification"])
        busy = threading.Thread(target=lambda: server.post("/predict", {"inputs": "x"}))
        busy.start()
        assert gate.entered.wait(10)
        gone_text = " ".join(["gone"] * 20)  # a length no other request has
        gone_length = len(server.app.state.engine.tokenizer(gone_text)["input_ids"])
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as raw:
            body = json.dumps({"inputs": gone_text}).encode()
            raw.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            deadline = time.monotonic() + 10
            while metric(server, "serve_queue_features") < 1:  # queued behind the held batch
                assert time.monotonic() < deadline
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while metric(server, 'serve_requests_total{route="/predict",status="499"}') < 1:
            assert time.monotonic() < deadline, "the server did not notice the client going away"
            time.sleep(0.02)
        gate.release.set()
        busy.join(10)
        assert answered(server.post("/predict", {"inputs": TEXTS[0]}))
        assert all(gone_length not in lengths for lengths in gate.lengths), gate.lengths
        assert metric(server, "serve_dropped_requests_total") == 1
        assert metric(server, "serve_requests_in_flight") == 0 and metric(server, "serve_queue_features") == 0
    finally:
        server.stop()


def test_request_timeout_answers_503_and_drops_the_queued_work(models):
    server = Server(Engine(models["text-classification"], limits=Limits(request_timeout=0.5, batchers=1)))
    try:
        gate = Gate(server.app.state.engine.pipes["text-classification"])
        held = []
        thread = threading.Thread(target=lambda: held.append(server.post("/predict", {"inputs": "x"})))
        thread.start()
        assert gate.entered.wait(10)
        queued = server.post("/predict", {"inputs": TEXTS[1]})  # waits behind the held forward, then times out
        assert queued.status_code == 503 and "--request-timeout" in queued.json()["error"]
        gate.release.set()
        thread.join(10)
        assert held[0].status_code == 503  # its forward was running: it ran, but past its time
        assert answered(server.post("/predict", {"inputs": TEXTS[0]}))
        queued_length = len(server.app.state.engine.tokenizer(TEXTS[1])["input_ids"])
        assert all(queued_length not in lengths for lengths in gate.lengths), gate.lengths
        assert metric(server, "serve_dropped_requests_total") == 1
    finally:
        server.stop()


# -- errors ------------------------------------------------------------------------------------------------------
def test_client_errors_are_json_naming_the_field(servers):
    server = servers["text-classification"]
    cases = [
        (httpx.post(server.url + "/predict", content=b"{not json", headers={"Content-Type": "application/json"}),
         422, "not valid JSON"),
        (server.post("/predict", {"inputs": 3}), 422, "inputs"),
        (server.post("/predict", {"inputs": []}), 422, "non-empty"),
        (server.post("/predict", {"inputs": ["a", ""]}), 422, "non-empty"),
        (server.post("/predict", {"inputs": "a", "colour": 1}), 422, "colour: unknown field"),
        (server.post("/predict", {}), 422, "inputs: required"),
        (server.post("/predict", {"inputs": LONG}), 422, "64"),
        (server.post("/predict", {"inputs": ["a", LONG]}), 422, "inputs[1]"),
        (server.post("/predict", {"inputs": "a", "raw_scores": "maybe"}), 422, "raw_scores"),
        (server.post("/predict", {"inputs": ["a"] * 257}), 413, "--max-inputs-per-request"),
        (server.post("/predict", {"inputs": "a" * (1 << 20)}), 413, "--max-body-bytes"),
        (servers["fill-mask"].post("/fill-mask", {"inputs": "no mask here"}), 422, "no mask token"),
        (servers["fill-mask"].post("/fill-mask", {"inputs": "a <mask>", "top_k": 0}), 422, "top_k"),
        (servers["question-answering"].post("/answer", {"inputs": {"question": 1, "context": "c"}}), 422,
         "question"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (words, response.text)
        body = response.json()
        assert words in body["error"] and "\n" not in body["error"], body
    assert server.post("/nowhere", {}).status_code == 404


def test_api_key_and_cors(models):
    server = Server(Engine(models["text-classification"]), api_key="s3cret", cors_origins=["http://example.org"])
    try:
        assert server.post("/predict", {"inputs": "a"}).status_code == 401
        wrong = server.post("/predict", {"inputs": "a"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/health").status_code == 200
        assert server.post("/predict", {"inputs": "a"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        preflight = httpx.options(server.url + "/predict", headers={
            "Origin": "http://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://example.org"
        other = httpx.get(server.url + "/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        server.stop()


def test_metrics_count_what_happened(models):
    server = Server(Engine(models["text-classification"]))
    try:
        for _ in range(3):
            answered(server.post("/predict", {"inputs": TEXTS[:2]}))
        server.post("/predict", {"inputs": []})
        assert metric(server, 'serve_requests_total{route="/predict",status="200"}') == 3
        assert metric(server, 'serve_requests_total{route="/predict",status="422"}') == 1
        tokens = sum(len(server.app.state.engine.tokenizer(t)["input_ids"]) for t in TEXTS[:2])
        assert metric(server, "serve_input_tokens_total") == 3 * tokens
        # Sequential requests: one forward each (the warm-up calls the pipelines directly, uncounted).
        assert metric(server, "serve_batch_sequences_sum") == 6 and metric(server, "serve_batch_sequences_count") == 3
        assert metric(server, 'serve_request_seconds_count{route="/predict"}') == 4
    finally:
        server.stop()


# -- the command ---------------------------------------------------------------------------------------------------
def test_start_up_errors_exit_2(models, capsys):
    from roberta_prelayernorm.cli import main

    assert main(["serve", "--model", models["text-classification"], "--max-batch-tokens", "16"]) == 2
    assert "--max-batch-tokens 16 is less than the longest input allowed (64 tokens)" in capsys.readouterr().err
    assert main(["serve", "--model", models["text-classification"], "--precision", "int8", "--device", "cuda"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["serve", "--model", models["fill-mask"], "--port", port]) == 2
    assert "cannot bind" in capsys.readouterr().err
    assert main(["serve", "--model", models["fill-mask"], "--task", "summarization"]) == 2


def test_the_command_keeps_more_onednn_primitives_unless_told(models, monkeypatch):
    from roberta_prelayernorm.cli import main
    from roberta_prelayernorm.serve.cli import PRIMITIVE_CACHE_VARIABLE

    model = models["text-classification"]
    monkeypatch.delenv(PRIMITIVE_CACHE_VARIABLE, raising=False)
    assert main(["serve", "--model", model, "--max-batch-tokens", "16"]) == 2  # set before the model loads
    assert os.environ[PRIMITIVE_CACHE_VARIABLE] == "4096"
    monkeypatch.setenv(PRIMITIVE_CACHE_VARIABLE, "64")
    assert main(["serve", "--model", model, "--max-batch-tokens", "16"]) == 2
    assert os.environ[PRIMITIVE_CACHE_VARIABLE] == "64"


def test_bound_socket_lets_asyncio_set_nodelay():
    from roberta_prelayernorm.serve.cli import bind

    # asyncio sets TCP_NODELAY on accepted sockets only when proto is IPPROTO_TCP; without it every response
    # waited ~40 ms for a delayed ACK (measured: 72 ms against 14 ms per request).
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_import_does_not_load_the_server():
    code = ("import sys, roberta_prelayernorm.cli as c; c.build_parser(); "
            "assert not {'fastapi', 'uvicorn', 'prometheus_client'} & set(sys.modules), 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_sigterm_finishes_requests_in_flight_and_exits_0(models):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "roberta_prelayernorm", "serve", "--model",
                                models["text-classification"], "--port", str(port), "--max-batch-tokens", "256"],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.1)
        # The command started itself again on the allocator it chose (same process id: signals still reach it).
        chosen = allocator.in_use() if allocator.in_use() != "system" else next(
            (name for name in ("tcmalloc", "jemalloc") if allocator.library(name)), "system")
        assert httpx.get(url + "/info").json()["allocator"] == chosen
        texts = [[f"{LONG[:150]} {i} {j}" for j in range(64)] for i in range(12)]

        async def main():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                requests = [asyncio.ensure_future(client.post("/predict", json={"inputs": t, "truncate": True}))
                            for t in texts]
                await asyncio.sleep(0.3)
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*requests)

        responses = asyncio.run(main())
        assert [r.status_code for r in responses] == [200] * len(texts)
        assert all(len(r.json()) == 64 for r in responses)
        assert process.wait(30) == 0
        log = process.stderr.read()
        # Requests were in flight at the signal: some were answered (and logged) after it.
        after = log.split("Shutting down", 1)[1]
        assert "POST /predict 200" in after, log
        assert f"malloc: {chosen})" in log, log  # the start line says it
    finally:
        process.kill()
        process.wait()


# -- the page, in a real browser -------------------------------------------------------------------------------------
def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                             if os.path.exists("/usr/lib/chromium/chromedriver") else None)
    return browser, driver


@pytest.mark.slow
@pytest.mark.parametrize("task", list(HEADS))
def test_page_in_headless_chromium(servers, task, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    server = servers[task]
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(ready.text_to_be_present_in_element((By.ID, "about"), task))
    text = {"question-answering": "Who created Python?", "multiple-choice": "She opened the umbrella",
            "fill-mask": "The capital of France is <mask>."}.get(task, TEXTS[3])
    choices = ["because it rained.", "because it was dry.", "to fly"]
    browser.find_element(By.ID, "text").send_keys(text)
    if task == "question-answering":
        browser.find_element(By.ID, "context").send_keys(CONTEXT)
    if task == "multiple-choice":
        browser.find_element(By.ID, "choices").send_keys("\n".join(choices))
    browser.find_element(By.ID, "submit").click()
    if task == "text-classification":
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#bars .label"))
        expected = answered(server.post("/predict", {"inputs": text}))
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#bars .label")]
        assert shown == [r["label"] for r in expected]
    elif task == "token-classification":
        expected = answered(server.post("/tag", {"inputs": text}))
        assert expected, "the random tagger found no entity: the page would have nothing to mark"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#result mark"))
        marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
        assert [m.text.rsplit("\n", 1)[0].rsplit(m.find_element(By.TAG_NAME, "small").text, 1)[0].strip()
                for m in marks] == [text[e["start"]:e["end"]].strip() for e in expected]
    elif task == "multiple-choice":
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#bars .label"))
        expected = answered(server.post("/choose", {"inputs": {"prompt": text, "choices": choices}}))
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#bars .label")]
        assert shown == [r["choice"] for r in expected]
    elif task == "fill-mask":
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#result li"))
        expected = answered(server.post("/fill-mask", {"inputs": text}))
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#result li")]
        assert [s.split(" — ")[0] for s in shown] == [c["token_str"].strip() for c in expected]
    else:
        wait.until(lambda b: b.find_elements(By.ID, "answer"))
        expected = answered(server.post("/answer", {"inputs": {"question": text, "context": CONTEXT}}))
        assert browser.find_element(By.ID, "answer").text.startswith(expected["answer"])
        assert browser.find_element(By.CSS_SELECTOR, "#result mark").text.startswith(expected["answer"])
    assert browser.find_element(By.ID, "error").text == ""


@pytest.fixture(scope="module")
def browser():
    binary, driver = chromium_paths()
    if binary is None or driver is None:
        pytest.skip("chromium and chromedriver not found (make test installs Debian's chromium and chromium-driver "
                    "where apt-get can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()
