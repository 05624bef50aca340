"""AWS's own constraints on API fields, read from botocore's service models.

botocore (PyPI) ships each service's API model as AWS publishes it. A shape
carries `min`, `max`, `pattern` and `enum` where AWS declares them; where
AWS states a constraint only in prose ("Up to 255 letters ... are
allowed", "Valid characters: ..."), the model carries that prose too, the
same text as the API reference page. `field(service, path)` gathers both
into one Constraint; nothing here copies a pattern or a limit by hand.

Patterns are written for Java (AWS's SDKs validate with it): \\p{L} and
friends need the `regex` module, and Java's \\w and \\d are ASCII-only.
"""

import html
import re
from dataclasses import dataclass, field as dataclass_field

import botocore
import botocore.session
import regex

SESSION = botocore.session.get_session()
BOTOCORE_VERSION = botocore.__version__


def model(service):
    return SESSION.get_service_model(service)


def shape_at(service, path):
    """The shape at "Operation.member[.member...]" (an operation's input)
    or "Shape.member[...]" (a named shape); list and map members are
    stepped through, so "RegisterTaskDefinition.tags" is the list."""
    first, *members = path.split(".")
    service_model = model(service)
    if first in service_model.operation_names:
        shape = service_model.operation_model(first).input_shape
    else:
        shape = service_model.shape_for(first)
    for name in members:
        shape = shape.members[name]
    return shape


def java_pattern(pattern):
    """A Java regular expression as the `regex` module reads it: \\w and \\d
    stay ASCII, as in Java; \\p{...} classes are the same in both."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            ascii_class = {"\\w": "A-Za-z0-9_", "\\d": "0-9"}.get(pair)
            if ascii_class:
                out.append(ascii_class if in_class else f"[{ascii_class}]")
            else:
                out.append(pair)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return regex.compile("".join(out))


def prose(shape):
    """The shape's documentation as plain text (tags dropped, entities read)."""
    return html.unescape(re.sub(r"<[^>]+>", "", shape.documentation or ""))


@dataclass
class Constraint:
    """Everything AWS says a value of one field must be. `source` names the
    model shape; `rules` lists, in words, what was found there."""

    source: str
    min_length: int = None
    max_length: int = None
    pattern: object = None
    charset: frozenset = None
    forbidden_prefixes: tuple = ()
    no_edge_hyphen: bool = False
    minimum: int = None
    maximum: int = None
    enum: tuple = None
    rules: list = dataclass_field(default_factory=list)

    def violations(self, value):
        """What is wrong with `value`, in words; empty when AWS accepts it."""
        wrong = []
        if isinstance(value, bool):
            return wrong
        if isinstance(value, (int, float)):
            if self.minimum is not None and value < self.minimum:
                wrong.append(f"{value} is below {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                wrong.append(f"{value} is above {self.maximum}")
            return wrong
        text = str(value)
        if self.min_length is not None and len(text) < self.min_length:
            wrong.append(f"shorter than {self.min_length}")
        if self.max_length is not None and len(text) > self.max_length:
            wrong.append(f"{len(text)} characters, at most {self.max_length}")
        if self.pattern is not None and not self.pattern.fullmatch(text):
            wrong.append(f"does not match {self.pattern.pattern}")
        if self.charset is not None:
            bad = sorted(set(text) - self.charset)
            if bad:
                wrong.append(f"characters not allowed: {''.join(bad)!r}")
        for prefix in self.forbidden_prefixes:
            if text.lower().startswith(prefix):
                wrong.append(f"must not begin with {prefix!r}")
        if self.no_edge_hyphen and (text.startswith("-") or text.endswith("-")):
            wrong.append("must not begin or end with a hyphen")
        if self.enum is not None and text not in self.enum:
            wrong.append(f"not one of {', '.join(self.enum)}")
        return wrong


LETTERS_DIGITS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

# The prose forms AWS uses for constraints the model's traits do not hold.
# Each reads one sentence of the documentation into the Constraint.
PROSE = [
    # ECS names: "Up to 255 letters (uppercase and lowercase), numbers,
    # underscores, and hyphens are allowed."
    (r"Up to (\d+) letters \(uppercase and lowercase\), numbers, underscores, and hyphens are allowed",
     lambda c, m: (setattr(c, "max_length", int(m[1])), setattr(c, "charset", LETTERS_DIGITS | set("_-")))),
    # EC2 security groups: "Up to 255 characters in length".
    (r"Up to (\d+) characters in length", lambda c, m: setattr(c, "max_length", int(m[1]))),
    # EC2: "Valid characters: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"
    (r"(?:Valid characters:|Allowed characters are) a-z, A-Z, 0-9, spaces, and (\S+?)(?:\s|$)",
     lambda c, m: setattr(c, "charset", LETTERS_DIGITS | {" "} | set(m[1]))),
    (r"Can't start with sg-", lambda c, m: setattr(c, "forbidden_prefixes", c.forbidden_prefixes + ("sg-",))),
    # ELB names: "can have a maximum of 32 characters, must contain only
    # alphanumeric characters or hyphens, must not begin or end with a
    # hyphen, and must not begin with "internal-"".
    (r"maximum of (\d+) characters", lambda c, m: setattr(c, "max_length", int(m[1]))),
    (r"must contain only alphanumeric characters or hyphens", lambda c, m: setattr(c, "charset", LETTERS_DIGITS | {"-"})),
    (r"must not begin or end with a hyphen", lambda c, m: setattr(c, "no_edge_hyphen", True)),
    (r'must not begin with "internal-"',
     lambda c, m: setattr(c, "forbidden_prefixes", c.forbidden_prefixes + ("internal-",))),
    # EC2 tags: "accept a maximum of 127 Unicode characters. May not begin with aws:"
    (r"maximum of (\d+) Unicode characters", lambda c, m: setattr(c, "max_length", int(m[1]))),
    (r"May not begin with aws:", lambda c, m: setattr(c, "forbidden_prefixes", c.forbidden_prefixes + ("aws:",))),
    # ECS health checks: "You may specify between 5 and 300 seconds."
    (r"(?:You may|You can) specify between (\d+) and (\d+)",
     lambda c, m: (setattr(c, "minimum", int(m[1])), setattr(c, "maximum", int(m[2])))),
    # ECS stopTimeout: "The valid values for Fargate are 2-120 seconds."
    (r"The valid values for Fargate are (\d+)-(\d+) seconds",
     lambda c, m: (setattr(c, "minimum", int(m[1])), setattr(c, "maximum", int(m[2])))),
]


def field(service, path):
    """The Constraint AWS puts on the field at `path` of `service`'s model.
    Fails when neither the traits nor the prose say anything: then the
    model changed and the rule would check nothing."""
    shape = shape_at(service, path)
    found = Constraint(source=f"botocore {BOTOCORE_VERSION} {service} {path}")
    traits = shape.metadata
    if "min" in traits and shape.type_name == "string":
        found.min_length = traits["min"]
    if "max" in traits and shape.type_name == "string":
        found.max_length = traits["max"]
    if "min" in traits and shape.type_name in ("integer", "long"):
        found.minimum = traits["min"]
    if "max" in traits and shape.type_name in ("integer", "long"):
        found.maximum = traits["max"]
    if "pattern" in traits:
        found.pattern = java_pattern(traits["pattern"])
    if "enum" in traits:
        found.enum = tuple(traits["enum"])
    found.rules += [f"{k}={v}" for k, v in traits.items() if k in ("min", "max", "pattern", "enum")]
    text = prose(shape)
    for sentence, read in PROSE:
        match = re.search(sentence, text)
        if match:
            read(found, match)
            found.rules.append(f'documentation: "{match[0]}"')
    if not found.rules:
        raise LookupError(f"{found.source}: the model states no constraint (did it change?)")
    return found


def tag_fields(service, path):
    """(key, value, most tags) for the tags member at `path`: the Tag
    structure's Key/Value (or a map's key/value), and the largest count the
    list or map allows, when the model says."""
    shape = shape_at(service, path)
    most = None
    while True:
        if shape.type_name == "list":
            most = most if most is not None else shape.metadata.get("max")
            shape = shape.member
        elif shape.type_name == "map":
            most = most if most is not None else shape.metadata.get("max")
            return shape.key, shape.value, most
        elif "Tags" in shape.members:  # EC2's TagSpecification
            shape = shape.members["Tags"]
        else:
            members = {name.lower(): member for name, member in shape.members.items()}
            return members["key"], members["value"], most


def tag_constraints(service, path):
    """Constraints on a tag's key and value for the tags at `path`, from the
    key and value shapes and, where they are bare strings (EC2, ECR), from
    the prose of the Tag shape itself."""
    key_shape, value_shape, most = tag_fields(service, path)
    owner = shape_at(service, path)
    while owner.type_name == "list":
        owner = owner.member

    def read(shape, part):
        found = Constraint(source=f"botocore {BOTOCORE_VERSION} {service} {path} ({part} {shape.name})")
        traits = shape.metadata
        found.min_length, found.max_length = traits.get("min"), traits.get("max")
        if "pattern" in traits:
            found.pattern = java_pattern(traits["pattern"])
        found.rules += [f"{k}={v}" for k, v in traits.items() if k in ("min", "max", "pattern")]
        for sentence, reader in PROSE:
            match = re.search(sentence, prose(shape))
            if match:
                reader(found, match)
                found.rules.append(f'documentation: "{match[0]}"')
        # ECR's Tag: "Tag keys can have a maximum character length of 128
        # characters, and tag values can have a maximum length of 256".
        match = re.search(r"Tag keys can have a maximum character length of (\d+) characters, and tag values "
                          r"can have a maximum length of (\d+)", prose(owner) + " " + prose(shape_at(service, path)))
        if match and found.max_length is None:
            found.max_length = int(match[1] if part == "key" else match[2])
            found.rules.append(f'documentation: "{match[0]}"')
        # Every service reserves the aws: prefix for keys (ECS Tag, EC2 Tag).
        if part == "key" and "aws:" not in found.forbidden_prefixes:
            found.forbidden_prefixes += ("aws:",)
        if found.max_length is None:
            raise LookupError(f"{found.source}: no length limit found (did the model change?)")
        return found

    return read(key_shape, "key"), read(value_shape, "value"), most


def fargate_sizes():
    """{cpu: set of memory MiB} as RegisterTaskDefinition's `memory`
    documentation lists them for Fargate (the "Task size" table of the ECS
    developer guide, task_definition_parameters.html#task_size)."""
    documentation = shape_at("ecs", "RegisterTaskDefinition.memory").documentation
    items = [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in re.findall(r"<li>\s*<p>(.*?)</p>", documentation)]
    sizes = {}
    for item in items:
        size = re.fullmatch(r"(.+?) - Available cpu values: (\d+) \(.*", item.strip())
        if not size:
            continue
        memory, cpu = size[1].strip(), size[2]
        explicit = re.fullmatch(r"(\d+) \([\d.]+ GB\)(?:, (\d+) \([\d.]+ GB\))*", memory)
        between = re.fullmatch(r"Between (\d+) \(\d+ GB\) and (\d+) \(\d+ GB\) in increments of (\d+) \(\d+ GB\)", memory)
        in_gb = re.fullmatch(r"Between (\d+) ?GB and (\d+) GB in (\d+) GB increments", memory)
        if explicit:
            values = {int(v) for v in re.findall(r"(\d+) \(", memory)}
        elif between:
            low, high, step = map(int, between.groups())
            values = set(range(low, high + 1, step))
        elif in_gb:
            low, high, step = (int(v) * 1024 for v in in_gb.groups())
            values = set(range(low, high + 1, step))
        else:
            raise LookupError(f"cannot read the Fargate size {memory!r} from ecs RegisterTaskDefinition.memory")
        sizes[int(cpu)] = values
    if len(sizes) < 5:
        raise LookupError(f"read only {len(sizes)} Fargate CPU sizes from ecs RegisterTaskDefinition.memory")
    return sizes
