"""The model side of the server: a model of any task loaded once, and the thread(s) that run it.

Requests become *jobs*: their inputs' features (the pipelines' own, see pipelines/base.py) waiting in a queue.
A batcher thread takes what is waiting, oldest first, up to `max_batch_tokens` tokens, and runs it as the
offline pipeline runs its inputs (pipelines/base.py run_batches): sorted by length, in forwards of at most
`max_batch_size` sequences, each padded only to its own longest (on GPUs the model packs the real tokens).
Each job whose features have all run is finished with the pipeline's own postprocessing; a job's features may
run in several forwards. Work of a client that has gone (cancelled) is dropped before it runs. The event loop
never waits on the model.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import SettingError
from ..pipelines import pipeline_class
from ..pipelines.base import run_batches

logger = logging.getLogger("roberta_prelayernorm.serve")

PRECISIONS = ("fp32", "bf16", "int8")
# Each task's route.
TASK_ROUTES = {"text-classification": "/predict", "token-classification": "/tag", "question-answering": "/answer",
               "multiple-choice": "/choose", "fill-mask": "/fill-mask"}


@dataclass
class Limits:
    """What one server accepts (the serve command's flags)."""

    max_batch_tokens: int = 16384
    max_batch_size: int = 32
    batchers: int = 2  # threads running forwards
    max_concurrent_requests: int = 512
    max_inputs_per_request: int = 256
    max_body_bytes: int = 1 << 20
    max_input_length: Optional[int] = None  # None: the model's
    truncate: bool = False  # the default of a request's "truncate"
    request_timeout: float = 60.0


def task_of(config, task: Optional[str] = None) -> Optional[str]:
    """The pipeline task of a model: `task` if given, else the one whose head config.architectures names;
    None for a model without a task head (the bare encoder), which embeds and tokenizes only."""
    from ..tasks import PIPELINE_TASKS

    if task is not None:
        if task not in PIPELINE_TASKS:
            raise SettingError(f"--task {task!r} is not one of {', '.join(sorted(PIPELINE_TASKS))}")
        return PIPELINE_TASKS[task].pipeline_names[0]
    architecture = (config.architectures or ["RobertaPreLayerNormModel"])[0]
    return next((t.pipeline_names[0] for t in PIPELINE_TASKS.values() if t.head_class().__name__ == architecture),
                None)


class Engine:
    """A model, its tokenizer and the pipelines that run it: the task's (if it has one) and embeddings."""

    def __init__(self, model: str, task: Optional[str] = None, device=None, precision: str = "fp32",
                 limits: Optional[Limits] = None):
        import torch

        from ..auto import AutoConfig, AutoModel
        from ..devices import as_device
        from ..quantization import fastest_int8_engine
        from ..tokenizer import AutoTokenizer
        from .embed import EmbeddingPipeline

        self.limits = limits = limits or Limits()
        if precision not in PRECISIONS:
            raise SettingError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.device, self.precision, self.name = as_device(device or "cpu"), precision, model
        if precision == "int8" and self.device.type != "cpu":
            raise SettingError(f"--precision int8 runs on the CPU only, not on --device {self.device}; use bf16 there")
        if precision == "bf16" and self.device.type == "cpu" and not cpu_bf16_kernels():
            logger.warning("--precision bf16: this CPU has no AVX-512, so oneDNN has no bf16 kernels for it and bf16 "
                           "runs slower than fp32 here; use fp32 (exact) or int8")
        self.task = task_of(AutoConfig.from_pretrained(model), task)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        loader = AutoModel if self.task is None else _head_class(self.task)
        self.model = on_passing_thread(lambda: loader.from_pretrained(
            model, torch_dtype=torch.bfloat16 if precision == "bf16" else None,
            quantize="int8" if precision == "int8" else None).to(self.device).eval())
        self.int8_engine = fastest_int8_engine() if precision == "int8" else None  # measured while loading
        self.pipes = {"embed": EmbeddingPipeline(self.model, self.tokenizer, batch_size=limits.max_batch_size)}
        if self.task is not None:
            self.pipes[self.task] = pipeline_class(self.task)(self.model, self.tokenizer,
                                                              batch_size=limits.max_batch_size)
        longest = self.tokenizer.model_max_length  # the model's, after the pipelines fitted the tokenizer to it
        if limits.max_input_length is not None:
            if limits.max_input_length > longest:
                raise SettingError(f"--max-input-length {limits.max_input_length} is more than the model takes "
                                   f"({longest} tokens)")
            self.tokenizer.model_max_length = longest = limits.max_input_length
        self.max_input_length = longest
        if limits.max_batch_tokens < longest:
            raise SettingError(f"--max-batch-tokens {limits.max_batch_tokens} is less than the longest input allowed "
                               f"({longest} tokens): such an input could never run; raise it or lower "
                               "--max-input-length")

    @property
    def labels(self) -> Optional[list]:
        if self.task in ("text-classification", "token-classification"):
            id2label = self.model.config.id2label
            return [id2label[i] for i in range(len(id2label))]
        return None

    def warm_up(self) -> None:
        """One call of each pipeline, so the first request does not pay for weight packing and allocation."""
        samples = {"text-classification": "Hello world", "token-classification": "Jim Henson lives in Paris",
                   "question-answering": {"question": "Who?", "context": "Jim Henson was a puppeteer"},
                   "multiple-choice": {"prompt": "It rained", "choices": ["so we stayed in", "so we swam"]},
                   "fill-mask": f"Hello {self.tokenizer.mask_token} world", "embed": "Hello world"}
        for name, pipe in self.pipes.items():
            pipe([samples[name]])


class Job:
    """One request's work: its inputs' features, their outputs as they come, and the callback that answers."""

    def __init__(self, pipe, items: list, features: list[list[dict]], options: dict, single: bool,
                 answer: Callable[[object, Optional[BaseException]], None]):
        self.pipe, self.items, self.features, self.options, self.single = pipe, items, features, options, single
        self.flat = [feature for per_item in features for feature in per_item]
        self.outputs: list = [None] * len(self.flat)
        self.remaining = len(self.flat)  # features whose outputs have not come yet
        self.waiting = list(range(len(self.flat)))  # features not yet taken by a batcher
        self.answer, self.cancelled = answer, False

    @property
    def tokens(self) -> int:
        return sum(len(feature["input_ids"]) for feature in self.flat)

    def finish(self) -> None:
        """Postprocess every input with its features' outputs (the pipeline's own code) and answer."""
        results, start = [], 0
        for item, per_item in zip(self.items, self.features):
            outputs = self.outputs[start:start + len(per_item)]
            start += len(per_item)
            results.append(self.pipe.postprocess(item, per_item, outputs, self.options))
        self.answer(self.pipe.finish(self.items, results, self.single, self.options), None)


class Batcher:
    """The threads that run the model (`batchers` of them, default 2): each takes waiting features up to
    max_batch_tokens and runs them. Several let forwards overlap: on a few busy CPU cores, two forwards of one
    thread each keep the cores busier than one forward whose threads wait for each other at every operation
    (measured in the README's serving table). Each forward gets its share of torch's threads; a forward with
    nothing else running or waiting (a lone request) gets them all, as an offline pipeline call would, and
    the other batchers wait for it rather than oversubscribe the cores. Lone requests all run on the first
    batcher; the others take work only while a forward runs (see run), and only the first ever takes all the
    threads: each thread running torch keeps an OpenMP pool as large as its largest forward's team, and on two
    cores a second pool of two (one thread beside its own) is one more thread than cores, which makes libgomp
    stop spinning between parallel regions (see on_passing_thread)."""

    def __init__(self, engine: Engine, on_batch: Callable[[int, int, float], None] = lambda *_: None,
                 on_drop: Callable[[Job], None] = lambda _: None):
        import torch

        self.engine, self.on_batch, self.on_drop = engine, on_batch, on_drop
        self.pending: collections.deque[Job] = collections.deque()
        # One lock, two wake-ups: the first batcher's and the others'. A lone request wakes the first batcher only;
        # waking the others too (which would find nothing they may take) had them take the GIL from the forward
        # three times a request: 0.2 ms more per lone request on a tiny model.
        self.lock = threading.Lock()
        self.wake_first, self.wake_others = threading.Condition(self.lock), threading.Condition(self.lock)
        self.stopping, self.ready = False, False
        self.all_threads = torch.get_num_threads()
        self.share = max(1, self.all_threads // engine.limits.batchers)
        self.running, self.wide = 0, False  # forwards running; whether one of them has all the threads
        self.held_back = 0  # batchers waiting for the forward on all the threads to end
        self.threads = [threading.Thread(target=self.run, args=(i == 0,), name=f"batcher-{i}", daemon=True)
                        for i in range(engine.limits.batchers)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the threads."""
        with self.lock:
            self.stopping = True
            self.wake_first.notify_all()
            self.wake_others.notify_all()
        for thread in self.threads:
            thread.join()

    def submit(self, job: Job) -> None:
        with self.lock:
            self.pending.append(job)
            self.wake_first.notify()
            if self.running:  # the others take work only while a forward runs (see run)
                self.wake_others.notify_all()

    def cancel(self, job: Job) -> None:
        """Drop a job's features not yet run (its client went away or timed out)."""
        with self.lock:
            job.cancelled = True

    @property
    def queued_features(self) -> int:
        return sum(len(job.waiting) for job in list(self.pending))

    def run(self, first: bool) -> None:
        import torch

        torch.set_grad_enabled(False)
        torch.set_num_threads(self.share)
        if first:  # requests are refused (503) until then, so the other threads wait idle
            try:
                self.engine.warm_up()
            except Exception:  # noqa: BLE001 - logged; the requests then show what is wrong (as 500s with ids)
                logger.exception("the warm-up failed")
            self.ready = True
        wake = self.wake_first if first else self.wake_others
        while True:
            with self.lock:
                # The first batcher takes work whenever there is some; the others only while a forward runs, so
                # lone requests always run on the first one's OpenMP threads. Each thread that runs torch has a
                # pool of its own, whose threads spin a while after each forward: lone forwards taking turns
                # between two pools ran a fifth slower, each sharing the cores with the other pool's spinning.
                while not (self.pending and (first or self.running)) and not self.stopping:
                    wake.wait()
                if not self.pending:
                    return
                batch = self.take()
            if batch:
                self.execute(batch)

    def take(self) -> list[tuple[Job, int]]:
        """(job, feature index) pairs to run: the oldest job's pipeline, oldest jobs first, as many features as
        fit max_batch_tokens. With several batchers, one forward's worth of them: the max_batch_size nearest in
        length to the oldest waiting feature (which always runs), so that forwards stay little padded and the
        other batchers find work. Cancelled jobs leave the queue here, before their work runs."""
        for job in [job for job in self.pending if job.cancelled]:
            self.pending.remove(job)
            self.on_drop(job)
        if not self.pending:
            return []
        limits = self.engine.limits
        pipe, window, tokens = self.pending[0].pipe, [], 0
        for job in self.pending:
            if job.pipe is not pipe:
                continue
            for index in job.waiting:
                n = len(job.flat[index]["input_ids"])
                if window and tokens + n > limits.max_batch_tokens:
                    break
                window.append((job, index))
                tokens += n
            else:
                continue
            break  # the window is full
        taken = window
        if limits.batchers > 1 and len(window) > limits.max_batch_size:
            by_length = sorted(window, key=lambda pair: len(pair[0].flat[pair[1]]["input_ids"]))
            oldest = by_length.index(window[0])
            start = min(max(0, oldest - limits.max_batch_size // 2), len(window) - limits.max_batch_size)
            taken = by_length[start:start + limits.max_batch_size]
        for job, index in taken:
            job.waiting.remove(index)
        for job in [job for job in self.pending if not job.waiting]:
            self.pending.remove(job)
        return taken

    def execute(self, batch: list[tuple[Job, int]]) -> None:
        """Run the features taken, longest first, in forwards of max_batch_size (as run_batches cuts them; cut
        here so that each call is one forward, without run_batches' progress bar); each job is answered as soon
        as its last feature has run."""
        pipe, size = batch[0][0].pipe, self.engine.limits.max_batch_size
        batch = sorted(batch, key=lambda pair: -len(pair[0].flat[pair[1]]["input_ids"]))
        for group in (batch[i:i + size] for i in range(0, len(batch), size)):
            features = [job.flat[index] for job, index in group]
            started = time.perf_counter()
            try:
                with self.torch_threads(first=threading.current_thread() is self.threads[0]):
                    outputs = run_batches(pipe, features)
            except Exception as err:  # noqa: BLE001 - the requests still waiting on this batch get it (a 500)
                for job in dict.fromkeys(job for job, _ in batch):
                    if job.remaining:
                        job.cancelled = True
                        job.answer(None, err)
                return
            self.on_batch(len(features), len(features) * len(features[0]["input_ids"]), time.perf_counter() - started)
            for (job, index), output in zip(group, outputs):
                with self.lock:  # another thread may be running the job's other features
                    job.outputs[index] = output
                    job.remaining -= 1
                    last = job.remaining == 0
                if last and not job.cancelled:
                    try:
                        job.finish()
                    except Exception as err:  # noqa: BLE001 - that request's error (a 500)
                        job.answer(None, err)


    @contextlib.contextmanager
    def torch_threads(self, first: bool):
        """This thread's torch threads for one forward: on the `first` batcher, all of them when no other forward
        runs and no work waits (then others wait for it to end); else its share."""
        import torch

        with self.lock:
            while self.wide:  # only the first batcher goes wide: the others wait here
                self.held_back += 1
                self.wake_others.wait()
                self.held_back -= 1
            wide = self.wide = first and self.running == 0 and not self.pending and self.share < self.all_threads
            self.running += 1
            if self.pending:  # work still waiting may now go to the other batchers
                self.wake_others.notify_all()
        torch.set_num_threads(self.all_threads if wide else self.share)  # the calling thread's own setting
        try:
            yield
        finally:
            with self.lock:
                self.running -= 1
                if wide:
                    self.wide = False
                    if self.held_back:
                        self.wake_others.notify_all()


def on_passing_thread(make: Callable[[], object]):
    """make() run on a thread that then ends (its exception raised here). Loading runs torch's parallel operations
    (copies, the one-time speed measurements), and each thread that does keeps an OpenMP thread pool of its own
    (libgomp's) until it ends. With more pool threads than cores, libgomp stops spinning between parallel regions
    and each of a forward's hundreds of regions waits for a sleeping thread to wake: with the loading thread's pool
    kept beside the first batcher's, lone int8 forwards on two cores ran 1.5x slower than the same forward on the
    main thread of an offline pipeline."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = make()
        except BaseException as err:  # noqa: BLE001 - raised again on the calling thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name="load", daemon=True)  # daemon: Ctrl-C while loading exits
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def cpu_bf16_kernels() -> bool:
    """Whether oneDNN runs bf16 matrix products on this CPU: AVX-512 ones (natively with AVX512_BF16 or AMX:
    Intel Sapphire Rapids and later, AMD Zen 4 and later). Elsewhere (AVX2-only CPUs such as AMD Zen 3) they
    fall to generic code, slower than fp32."""
    from ..cpu_linear import _bf16_supported, ops_available

    return ops_available() and _bf16_supported()


def _head_class(task: str) -> type:
    from ..tasks import PIPELINE_TASKS

    return PIPELINE_TASKS[task].head_class()
