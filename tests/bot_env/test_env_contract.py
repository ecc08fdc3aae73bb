"""The two-environment contract: what bot/ takes from crm_ml imports with the bot env alone.

The Rasa process (Python 3.10, SQLAlchemy 1.4, scikit-learn < 1.2) imports a few
crm_ml modules. They must load there without pandas, scikit-learn or
statsmodels, and without SQLAlchemy 2 (DESIGN.md, "bot env"). The modules are
found in bot/'s own import lines, so a new import is checked as soon as it is
written. They are imported in a fresh interpreter of the bot env: Rasa itself
loads scikit-learn, so this test process could not tell who loaded what.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Set

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "sklearn", "statsmodels")


def crm_ml_modules_of_bot() -> List[str]:
    """Every crm_ml module a file under bot/ imports (at the top or inside a function)."""
    names: Set[str] = set()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.split(".")[0] == "crm_ml")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "crm_ml":  # ``from crm_ml import registry``: a module
                    names.update(f"crm_ml.{a.name}" for a in node.names
                                 if (ROOT / "crm_ml" / f"{a.name}.py").exists()
                                 or (ROOT / "crm_ml" / a.name).is_dir())
                elif node.module.startswith("crm_ml."):
                    names.add(node.module)
    return sorted(names)


PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
sa = sys.modules.get("sqlalchemy")
print(json.dumps({"top_level": sorted(m for m in sys.modules if "." not in m),
                  "sqlalchemy": getattr(sa, "__version__", None)}))
"""


def test_bot_imports_the_shared_contract_and_the_light_modules():
    modules = crm_ml_modules_of_bot()
    assert {"crm_ml.config", "crm_ml.contract", "crm_ml.identity",
            "crm_ml.ratelimit"} <= set(modules), modules


def test_what_bot_takes_from_crm_ml_loads_without_the_app_env_libraries():
    modules = crm_ml_modules_of_bot()
    done = subprocess.run([sys.executable, "-c", PROBE, *modules], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    heavy = sorted(set(HEAVY) & set(loaded["top_level"]))
    assert heavy == [], f"{modules} load {heavy}"
    version = loaded["sqlalchemy"]
    assert version is None or version.startswith("1.4."), \
        f"{modules} load SQLAlchemy {version}, not the bot env's 1.4"
