# Config validation: snakemake's validate() against the JSON schema, and on failure one line
# per problem naming the key (e.g. "features.sigmaa: Additional properties are not allowed").
import jsonschema
import yaml
from snakemake.exceptions import WorkflowError

SCHEMA = "../schemas/config.schema.yaml"  # validate() resolves it beside this file
# The defaults beside the Snakefile; `--configfile other.yaml` overrides any key.
DEFAULTS = os.path.join(os.path.dirname(workflow.main_snakefile), "config.yaml")


def yaml_syntax_error(path):
    """'<file>:<line>: YAML syntax error: ...' for a config file YAML cannot parse, else None.

    Snakemake's own message ("Config file is not valid JSON or YAML") names neither.
    """
    with open(path, encoding="utf-8") as fh:
        try:
            yaml.safe_load(fh)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            started = ""
            if exc.context and exc.context_mark and exc.context_mark.line != mark.line:
                started = (
                    f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
                )
            problem = exc.problem or exc.context
            return f"{path}:{mark.line + 1}: YAML syntax error: {problem}{started}"
        except yaml.YAMLError as exc:
            return f"{path}: YAML syntax error: {' '.join(str(exc).split())}"
    return None


if yaml_syntax_error(DEFAULTS):
    raise WorkflowError(yaml_syntax_error(DEFAULTS))


configfile: DEFAULTS


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
