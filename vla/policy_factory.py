"""The one place a model policy is built: transformers from a model directory, or a served
model through its endpoint.

``make_policy(model_dir=..., adapter=...)`` loads the model (the adapter merged) into a
:class:`vla.model.generate.TransformersPolicy`; ``make_policy(endpoint=..., model_dir=...)``
builds a :class:`vla.serving.client.EndpointPolicy` whose grammar and codec are read from
``model_dir`` (the served model's directory, no weights loaded). The endpoint is checked
first (:func:`vla.serving.urls.served_models`): a wrong URL is one line,
:class:`vla.serving.urls.ServerUnreachable`, and without ``served_model`` the policy asks for
the first model the server lists (the base model; adapters come after it).
"""

from __future__ import annotations

from pathlib import Path


def make_policy(model_dir: str | Path | None = None, endpoint: str | None = None,
                served_model: str | None = None, adapter: str | Path | None = None,
                max_reasoning_tokens: int = 96, trajectory_decoding: str = "greedy",
                constrained: bool = True, images_per_prompt: int | None = None,
                video_fps: float | None = None,
                api_key: str | None = None, concurrency: int = 16, top_p: float = 1.0,
                check_server: bool = True, name: str | None = None):
    """A :class:`vla.policy.Policy` of a vla model (see the module docstring).

    ``model_dir`` is always needed: the model itself (transformers) or the served model's
    directory (endpoint). ``adapter`` applies to transformers only (a served adapter is a
    ``served_model`` name); ``max_reasoning_tokens`` to the transformers grammar (a served
    model's grammar has the default); ``images_per_prompt`` and ``video_fps`` (the server's
    frame rate for videos) to an endpoint (default: the default rig's; a data set's are
    :func:`vla.data.build.served_rig`). ``name`` names the policy in tables and traces
    (default: the model directory, or the served model)."""
    if model_dir is None:
        raise ValueError("a model policy needs model_dir: the model (transformers) or the "
                         "served model's directory (grammar and codec, with endpoint)")
    if endpoint is None:
        if served_model is not None:
            raise ValueError("served_model names a model on an endpoint; give endpoint too")
        from vla.model.generate import TransformersPolicy
        from vla.model.loading import load_model_dir

        return TransformersPolicy(load_model_dir(model_dir, adapter=adapter),
                                  name=name, max_reasoning_tokens=max_reasoning_tokens,
                                  trajectory_decoding=trajectory_decoding,
                                  constrained=constrained)
    if adapter is not None:
        raise ValueError("adapter merges a LoRA adapter into a transformers model; on an "
                         "endpoint, load it into the server and pass its served_model name")
    from vla.serving.client import EndpointPolicy, VLAClient
    from vla.serving.urls import api_base, served_models

    base = api_base(endpoint)
    if check_server:
        names = served_models(base, api_key=api_key)
        if served_model is not None and served_model not in names:
            raise ValueError(f"the server at {base} serves no model {served_model!r}; it "
                             f"serves {names}")
        served_model = served_model or names[0]
    elif served_model is None:
        raise ValueError("served_model is needed when the server is not asked for its models")
    extra = {k: v for k, v in (("images_per_prompt", images_per_prompt),
                               ("video_fps", video_fps)) if v is not None}
    client = VLAClient.for_model_dir(base, served_model, model_dir, api_key=api_key, **extra)
    return EndpointPolicy(client, trajectory_decoding=trajectory_decoding, top_p=top_p,
                          concurrency=concurrency, constrained=constrained, name=name)
