# Validation of the config against workflow/schemas/config.schema.yaml, with errors in a few lines
# (the key, the value and the rule) instead of jsonschema's dump of the schema. No rules here.
import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "../schemas/config.schema.yaml"  # relative to this file, as validate() resolves it
# Dataset keys of every source, and those only a source: files dataset reads (the others simulate).
DATASET_KEYS = ("name", "split", "source", "truth_kinds")
FILES_KEYS = ("path", "pixel_size_override_pm")


def _key_path(path) -> str:
    """A jsonschema path as a config key: datasets[0].shape_px[1]."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(top level)"


def _short(value, limit=80) -> str:
    text = value if isinstance(value, str) and limit > 80 else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def schema_error(error: jsonschema.exceptions.ValidationError) -> str:
    """The config key, its value and the schema rule it breaks, in two lines."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        prefix = "" if where == "(top level)" else f"{where}."
        keys = ", ".join(f"{prefix}{k}" for k in extra)
        return (f"config: unknown key {keys} = {_short(error.instance[extra[0]])}\n"
                f"  rule: {where} takes only the keys of workflow/schemas/config.schema.yaml "
                f"({_short(', '.join(sorted(known)), 120)})")
    return (f"config: {where} = {_short(error.instance)}: {error.message.splitlines()[0][:200]}\n"
            f"  rule: {error.validator} {_short(error.validator_value)} (workflow/schemas/config.schema.yaml)")


def check_dataset_keys(datasets) -> None:
    """Refuse keys a dataset's source does not read (before the schema fills in every default).

    A ``source: files`` dataset reads only ``name, split, source, path, pixel_size_override_pm``; the
    simulation keys (``pixel_size_pm``, ``material``, ...) would be silently ignored there.  A simulated
    dataset does not read ``path`` or ``pixel_size_override_pm``.
    """
    if not isinstance(datasets, list):
        return  # the schema says what is wrong
    for k, entry in enumerate(datasets):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name", k)
        if entry.get("source", "simulate") == "files":
            extra = sorted(set(entry) - set(DATASET_KEYS + FILES_KEYS))
            if extra:
                raise WorkflowError(
                    f"datasets[{name}]: {', '.join(extra)} not read by a source: files dataset, which takes only "
                    f"{', '.join(DATASET_KEYS + FILES_KEYS)} (the pixel size comes from the files; "
                    f"pixel_size_override_pm replaces it)")
        else:
            extra = sorted(set(entry) & set(FILES_KEYS))
            if extra:
                raise WorkflowError(f"datasets[{name}]: {', '.join(extra)} only for source: files (this dataset "
                                    f"is simulated: pixel_size_pm sets its pixel size)")


check_dataset_keys(config.get("datasets"))
try:
    validate(config, SCHEMA)
except WorkflowError as exc:
    # validate() raises WorkflowError while handling jsonschema's ValidationError
    cause = exc.__cause__ or exc.__context__
    if not isinstance(cause, jsonschema.exceptions.ValidationError):
        raise
    raise WorkflowError(schema_error(cause)) from None
