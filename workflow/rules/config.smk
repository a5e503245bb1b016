# Config validation: snakemake's validate() against the JSON schema, and on failure one line
# per problem naming the key (e.g. "features.sigmaa: Additional properties are not allowed").
import jsonschema
import yaml
from snakemake.exceptions import WorkflowError

SCHEMA = "../schemas/config.schema.yaml"  # validate() resolves it beside this file


def config_problems(cfg, schema_path):
    """Messages 'key.path: problem' of every schema violation in cfg, sorted by key."""
    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for error in validator.iter_errors(cfg):
        key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        found.append(f"{key}: {error.message}")
    return sorted(found)


def validate_config(cfg):
    try:
        validate(cfg, SCHEMA)
    except WorkflowError as exc:
        problems = config_problems(
            cfg,
            os.path.join(
                os.path.dirname(workflow.main_snakefile),
                "workflow/schemas/config.schema.yaml",
            ),
        )
        raise WorkflowError(
            "invalid configuration (config.yaml + --configfile):\n  "
            + "\n  ".join(problems or [str(exc)])
        ) from None


validate_config(config)
