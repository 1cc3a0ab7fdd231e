"""Print pyproject.toml's runtime requirements, with the extras named on the command line.

The Dockerfile's dependency layers are keyed on this output rather than on pyproject.toml, so
editing dev extras or tool settings does not reinstall TensorFlow. Self-references such as
``mnist-service[tensorflow]`` are expanded here: pip would look for them on the index.

    python requirements.py              # serving on LiteRT (the api-lite image)
    python requirements.py train        # + TensorFlow and the trainer (the full image)
"""

import re
import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
extras = project["optional-dependencies"]
self_reference = re.compile(re.escape(project["name"]) + r"\[([^\]]+)\]")


def expand(requirements: list[str]) -> list[str]:
    out: list[str] = []
    for requirement in requirements:
        match = self_reference.fullmatch(requirement.strip())
        if match is None:
            out.append(requirement)
            continue
        for extra in match.group(1).split(","):
            out += expand(extras[extra.strip()])
    return out


wanted = list(project["dependencies"])
for name in sys.argv[1:]:
    wanted += extras[name]
print("\n".join(dict.fromkeys(expand(wanted))))
