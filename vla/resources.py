"""Find the data files vla ships: prompt templates, data recipes, serving configs, scenario
sets and training run configs. (The ``accelerate launch`` configs in ``train/accelerate/`` are
read by ``accelerate`` from the checkout, not by the library.)

The files live in top-level folders of the checkout, named by their path there
(``"prompts/system.txt"``, ``"eval/scenarios/demo.yaml"``). pyproject.toml installs each
folder as a package under :mod:`vla.assets`, and :func:`importlib.resources.files` finds it:
in an editable install it is the checkout's folder itself, in a wheel its copy inside the
installed package; neither depends on the working directory. The package must be installed
as files (not zipped): the readers here hand out plain paths.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# checkout folder -> the package it is installed as (pyproject.toml [tool.setuptools.package-dir])
ASSET_PACKAGES = {
    "prompts": "vla.assets.prompts",
    "data_recipes": "vla.assets.data_recipes",
    "serve": "vla.assets.serve",
    "eval/scenarios": "vla.assets.scenarios",
    "train/configs": "vla.assets.train_configs",
}
FILE_SUFFIXES = (".yaml", ".yml", ".json")


def resource_dir(folder: str) -> Path:
    """The installed folder ``folder`` (a key of :data:`ASSET_PACKAGES`, e.g. ``"prompts"``)."""
    try:
        package = ASSET_PACKAGES[folder]
    except KeyError:
        raise ValueError(f"unknown resource folder {folder!r}; known: "
                         f"{sorted(ASSET_PACKAGES)}") from None
    root = files(package)
    if not isinstance(root, Path):
        raise RuntimeError(f"{package} is not installed as plain files ({root!r}); "
                           f"install vla unzipped")
    return root


def resource_path(path: str) -> Path:
    """The installed file named by its path in the checkout, e.g. ``"prompts/system.txt"``."""
    folder, _, name = path.rpartition("/")
    if folder not in ASSET_PACKAGES or not name:
        raise ValueError(f"{path!r} is not a file of a resource folder; known folders: "
                         f"{sorted(ASSET_PACKAGES)}")
    file = resource_dir(folder) / name
    if not file.is_file():
        raise FileNotFoundError(f"resource {path} is missing (looked at {file})")
    return file


def resource_names(folder: str, suffix: str = ".yaml") -> list[str]:
    """Names (file stems) of the files in ``folder`` that end in ``suffix``, sorted."""
    return sorted(p.stem for p in resource_dir(folder).iterdir()
                  if p.is_file() and p.name.endswith(suffix))


def is_file_argument(value: str | Path) -> bool:
    """Whether a ``NAME|FILE`` argument names a file: a path with a folder or a file suffix."""
    text = str(value)
    return isinstance(value, Path) or "/" in text or text.endswith(FILE_SUFFIXES)


def named_or_file(folder: str, value: str | Path, what: str) -> Path:
    """The file a ``NAME|FILE`` argument means: a file (see :func:`is_file_argument`), which
    must exist, or the name of a packaged ``<folder>/<name>.yaml``. ``what`` names the kind of
    file in the errors (``"recipe"``, ``"serving config"``)."""
    if is_file_argument(value):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"no {what} file at {path}")
        return path
    names = resource_names(folder)
    if value not in names:
        raise ValueError(f"unknown {what} {str(value)!r}; packaged {what}s: {names} "
                         f"(or pass a .yaml file)")
    return resource_dir(folder) / f"{value}.yaml"


def load_yaml_settings(folder: str, value: str | Path, what: str,
                       keys) -> tuple[Path, dict]:
    """(file, mapping) of a ``NAME|FILE`` YAML argument (:func:`named_or_file`): invalid YAML,
    a document that is not a mapping, and keys outside ``keys`` are refused, naming the
    file."""
    import yaml

    path = named_or_file(folder, value, what)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with the keys {list(keys)}")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known keys: {list(keys)}")
    return path, raw
