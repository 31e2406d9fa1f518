"""The codec bench: fit each trajectory codec setting on train, measure it on test.

For each setting it reports the tokens per trajectory (mean and max), the vocabulary, whether
the length is fixed, the round-trip ADE / FDE (mean and max, m), the heading error (deg), the
share of decoded trajectories within the comfort bounds (beside the same share for the ground
truth), the encode / decode time per trajectory and the fitting time. Everything printed is
measured in this run; nothing is looked up.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.trajectory.data import TrajectorySplit
from vla.trajectory.metrics import displacement_errors, is_comfortable
from vla.trajectory.registry import DEFAULT_CODEC, make_codec
from vla.trajectory.types import TrajectorySpec


@dataclass(frozen=True)
class BenchSetting:
    codec: str
    settings: dict[str, Any] = field(default_factory=dict)


def default_settings() -> list[BenchSetting]:
    """The curve: every codec family from a few tokens to Alpamayo-R1's scale."""
    s = BenchSetting
    u_joint = {"joint": True, "accel_bins": 64, "curvature_bins": 64}
    return [
        s("waypoint", {"rate_hz": 1.0, "bins": 256}),
        s("waypoint", {"rate_hz": 2.0, "bins": 256}),
        s("waypoint", {"rate_hz": 2.0, "bins": 256, "spacing": "quantile"}),
        s("waypoint", {"rate_hz": 2.0, "bins": 256, "relative": "ego"}),
        s("waypoint", {"rate_hz": 10.0, "bins": 1024}),
        s("unicycle", {"rate_hz": 10.0, "accel_bins": 3000, "curvature_bins": 3000}),
        s("unicycle", {"rate_hz": 2.0, "accel_bins": 3000, "curvature_bins": 3000}),
        s("unicycle", {"rate_hz": 1.0, "accel_bins": 1000, "curvature_bins": 1000,
                       "lateral": "lateral_accel"}),
        s("unicycle", {"rate_hz": 2.0, **u_joint}),
        s("unicycle", {"rate_hz": 2.0, **u_joint, "lateral": "lateral_accel"}),
        s("unicycle", {"rate_hz": 2.0, **u_joint, "lateral": "lateral_accel",
                       "spacing": "quantile"}),
        s("unicycle", {"rate_hz": 1.0, **u_joint, "lateral": "lateral_accel",
                       "spacing": "quantile"}),
        s("kmeans_segment", {"segment_s": 6.0, "codebook_size": 4096}),
        s("kmeans_segment", {"segment_s": 1.0, "codebook_size": 2048}),
        s("kmeans_segment", {"segment_s": 0.5, "codebook_size": 512}),
        s("kmeans_segment", {"segment_s": 0.5, "codebook_size": 2048}),
        s("kmeans_segment", {"segment_s": 0.5, "codebook_size": 2048, "zero_tolerance_m": 0.3}),
        s("dct_bpe", {"step_m": 1.0, "vocab_size": 2048}),
        s("dct_bpe", {"step_m": 0.3, "vocab_size": 4096}),
        s("dct_bpe", {"step_m": 0.1, "vocab_size": 8192}),
    ]


def quick_settings() -> list[BenchSetting]:
    """One small setting per family, for tests and smoke runs."""
    s = BenchSetting
    return [
        s("waypoint", {"rate_hz": 2.0, "bins": 64}),
        s("unicycle", {"rate_hz": 2.0, "joint": True, "accel_bins": 32, "curvature_bins": 32,
                       "lateral": "lateral_accel"}),
        s("kmeans_segment", {"segment_s": 1.0, "codebook_size": 64, "kmeans_iters": 10}),
        s("dct_bpe", {"step_m": 0.5, "vocab_size": 2048}),
    ]


def _fit_codebook_size(setting: BenchSetting, train: TrajectorySplit,
                       spec: TrajectorySpec) -> tuple[BenchSetting, str | None]:
    """Shrink a k-means codebook that the training set cannot fill (at most a quarter of the
    training segments), and say so."""
    if setting.codec != "kmeans_segment":
        return setting, None
    seg = setting.settings.get("segment_s", 0.5)
    n_segments = len(train) * int(round(spec.horizon_s / seg))
    k = setting.settings.get("codebook_size", 2048)
    cap = max(2, n_segments // 4)
    if k <= cap:
        return setting, None
    cap = 2 ** int(np.log2(cap))
    note = f"codebook_size {k} -> {cap}: only {n_segments} training segments"
    return BenchSetting(setting.codec, {**setting.settings, "codebook_size": cap}), note


def bench_setting(setting: BenchSetting, spec: TrajectorySpec, train: TrajectorySplit,
                  test: TrajectorySplit) -> dict[str, Any]:
    """Fit one setting on ``train`` and measure it on ``test``; one result row."""
    setting, note = _fit_codebook_size(setting, train, spec)
    codec = make_codec(setting.codec, hz=spec.hz, horizon_s=spec.horizon_s, **setting.settings)
    t0 = time.perf_counter()
    codec.fit(train.trajectories, train.egos)
    fit_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids = [codec.encode(t, e) for t, e in zip(test.trajectories, test.egos, strict=True)]
    enc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dec = np.stack([codec.decode(i, e) for i, e in zip(ids, test.egos, strict=True)])
    dec_s = time.perf_counter() - t0

    err = displacement_errors(dec, test.trajectories)
    lengths = np.array([len(i) for i in ids])
    comfort = [is_comfortable(d, e, spec.hz) for d, e in zip(dec, test.egos, strict=True)]
    by_scenario = {s: float(err["ade"][[i for i, x in enumerate(test.scenarios) if x == s]].mean())
                   for s in sorted(set(test.scenarios))}
    n = len(test)
    return {
        "codec": codec.name,
        "setting": codec.describe(),
        "tokens": float(lengths.mean()),
        "tokens_max": int(lengths.max()),
        "vocab": int(codec.vocab_size),
        "fixed_length": bool(codec.fixed_length),
        "ade_mean": float(err["ade"].mean()),
        "ade_max": float(err["ade"].max()),
        "fde_mean": float(err["fde"].mean()),
        "fde_max": float(err["fde"].max()),
        "point_err_max": float(err["max_err"].max()),
        "heading_mean_deg": float(err["heading_mean"].mean()),
        "heading_max_deg": float(err["heading_max"].max()),
        "comfort_share": float(np.mean(comfort)),
        "encode_ms": 1000 * enc_s / n,
        "decode_ms": 1000 * dec_s / n,
        "fit_s": fit_s,
        "ade_by_scenario": by_scenario,
        "note": note,
        "settings": setting.settings,
    }


def reference_row(spec: TrajectorySpec, test: TrajectorySplit) -> dict[str, Any]:
    """The ground truth itself through the comfort check (the ceiling for comfort_share)."""
    comfort = [is_comfortable(t, e, spec.hz)
               for t, e in zip(test.trajectories, test.egos, strict=True)]
    return {"comfort_share": float(np.mean(comfort)), "n_test": len(test)}


def run_bench(spec: TrajectorySpec, train: TrajectorySplit, test: TrajectorySplit,
              settings: Sequence[BenchSetting] | None = None,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every setting's row, with ``n_train``, ``n_test``, ``hz`` and ``horizon_s`` added."""
    rows = []
    for setting in settings or default_settings():
        try:
            row = bench_setting(setting, spec, train, test)
        except ValueError as err:  # a setting this data cannot support: say so, go on
            if log:
                log(f"skipped {setting.codec} {setting.settings}: {err}")
            continue
        row.update(n_train=len(train), n_test=len(test), hz=spec.hz, horizon_s=spec.horizon_s,
                   default=(setting.codec == DEFAULT_CODEC[0]
                            and all(row["settings"].get(k) == v
                                    for k, v in DEFAULT_CODEC[1].items())))
        rows.append(row)
        if log:
            log(f"{row['setting']}: {row['tokens']:.1f} tokens, ADE {row['ade_mean']:.4f} m "
                f"(fit {row['fit_s']:.1f} s)")
    return rows


def best_fixed(rows: Sequence[dict[str, Any]], max_tokens: int = 16) -> dict[str, Any] | None:
    """The fixed-length row with the lowest mean ADE among those with <= ``max_tokens``."""
    ok = [r for r in rows if r["fixed_length"] and r["tokens_max"] <= max_tokens]
    return min(ok, key=lambda r: r["ade_mean"]) if ok else None


def format_table(rows: Sequence[dict[str, Any]], comfort_gt: float | None = None) -> str:
    """A Markdown table of the rows."""
    head = ("| codec | setting | tokens | vocab | fixed | ADE mean | ADE max | FDE mean | "
            "heading mean (deg) | comfort | enc ms | dec ms | fit s |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        setting = r["setting"].split("(", 1)[1].rstrip(")")
        tokens = f"{r['tokens']:.0f}" if r["fixed_length"] else \
            f"{r['tokens']:.1f} (max {r['tokens_max']})"
        mark = " **(default)**" if r.get("default") else ""
        lines.append(
            f"| {r['codec']}{mark} | {setting} | {tokens} | {r['vocab']} | "
            f"{'yes' if r['fixed_length'] else 'no'} | {r['ade_mean']:.4f} | {r['ade_max']:.3f} "
            f"| {r['fde_mean']:.4f} | {r['heading_mean_deg']:.2f} | {r['comfort_share']:.3f} | "
            f"{r['encode_ms']:.2f} | {r['decode_ms']:.2f} | {r['fit_s']:.1f} |")
    if comfort_gt is not None:
        lines.append("")
        lines.append(f"Ground truth within the comfort bounds: {comfort_gt:.3f}.")
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Mean ADE (log) against tokens per trajectory (log), one series per codec family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = {"waypoint": "s", "unicycle": "o", "kmeans_segment": "^", "dct_bpe": "D"}
    for name in dict.fromkeys(r["codec"] for r in rows):
        rs = sorted((r for r in rows if r["codec"] == name), key=lambda r: r["tokens"])
        ax.scatter([r["tokens"] for r in rs], [r["ade_mean"] for r in rs],
                   marker=markers.get(name, "x"), label=name, s=40)
        for r in rs:
            ax.annotate(f"V={r['vocab']}", (r["tokens"], r["ade_mean"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.axhline(0.10, color="grey", ls="--", lw=0.8)
    ax.axvline(16, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens per trajectory (mean for variable length)")
    ax.set_ylabel("round-trip ADE, mean (m)")
    ax.set_title(title or "trajectory codecs: error against tokens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_outputs(rows: list[dict[str, Any]], reference: dict[str, Any], out_dir: str | Path,
                  source: str) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``error_vs_tokens.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "table": out / "bench.md",
             "plot": out / "error_vs_tokens.png"}
    paths["json"].write_text(json.dumps({"source": source, "reference": reference,
                                         "rows": rows}, indent=2) + "\n")
    paths["table"].write_text(f"Data: {source}\n\n"
                              + format_table(rows, reference["comfort_share"]) + "\n")
    plot(rows, paths["plot"], title=f"trajectory codecs ({source})")
    return paths


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
