"""`rasa data validate`: domain, NLU, rules and stories agree (bot env)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Responses sent by custom actions are never named in a story; Rasa warns about
# each of them. Any other warning or error fails the test.
EXPECTED_WARNING = "is not used in any story or rule"


def test_rasa_data_validate_is_clean():
    rasa = Path(sys.executable).with_name("rasa")
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
    proc = subprocess.run([str(rasa), "data", "validate", "--domain", "domain",
                           "--fail-on-warnings"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    problems = [line for line in out.splitlines()
                if ("UserWarning" in line or " ERROR " in line) and EXPECTED_WARNING not in line]
    assert problems == []
    assert "No story structure conflicts found" in out
