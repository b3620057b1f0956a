"""The `spiral_accuracy` folder is a complete metric Space that works without `speechprune` installed.

One fresh process, with every `speechprune` import blocked by a meta-path finder, copies the folder twice
(under its own name and under another one, as a Space clone would be named), runs the card's "How to Use"
code and its doctest examples, `tests.py`'s cases through `evaluate.load`, and `app.py` with evaluate's
gradio launcher replaced by a recorder (gradio is not needed here). The tests below read its report.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement
from packaging.version import Version

from speechprune.evaluate_metric.spiral_accuracy import METRIC_PATH
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import CITATION, compute_spiral_accuracy

FOLDER = Path(METRIC_PATH)
SPACE_FILES = {"README.md", "app.py", "requirements.txt", "tests.py", "spiral_accuracy.py"}

CHILD = textwrap.dedent(
    r"""
    import doctest, json, re, runpy, shutil, sys
    from pathlib import Path

    class BlockSpeechprune:
        def find_spec(self, name, path=None, target=None):
            if name == "speechprune" or name.startswith("speechprune."):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, BlockSpeechprune())
    source, work = Path(sys.argv[1]), Path(sys.argv[2])
    report = {}

    named = work / "spiral_accuracy"  # what the card's "How to Use" loads, from the working folder
    shutil.copytree(source, named, ignore=shutil.ignore_patterns("__pycache__"))
    space = work / "my-space"  # a Space clone is named after the Space, not the module
    shutil.copytree(source, space, ignore=shutil.ignore_patterns("__pycache__"))

    import os
    os.chdir(work)
    card = (named / "README.md").read_text()
    use = re.split(r"\n##+ ", card.split("## How to Use", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"```python\n(.*?)```", use, flags=re.S)
    scope = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    report["how_to_use"] = {"blocks": len(blocks), "results": scope["results"]}
    examples = re.split(r"\n##+ ", card.split("### Examples", 1)[1], maxsplit=1)[0]
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(re.findall(r"```python\n(.*?)```", examples, flags=re.S)),
                              scope, "README examples", "README.md", 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    report["examples"] = {"attempted": runner.tries, "failed": runner.failures}

    import evaluate
    metric = evaluate.load(str(named))
    cases = runpy.run_path(str(named / "tests.py"))["test_cases"]
    report["cases"] = []
    for case in cases:
        kwargs = {k: v for k, v in case.items() if k != "result"}
        got = metric.compute(**kwargs)
        report["cases"].append({"expected": case["result"], "got": {k: got[k] for k in case["result"]}})

    launched = []
    evaluate.utils.launch_gradio_widget = launched.append
    sys.path.insert(0, str(space))
    runpy.run_path(str(space / "app.py"), run_name="__main__")
    (module,) = launched
    out = module.compute(predictions=["B", "answer: C", "A"], references=["B", "C", "D"])
    report["app"] = {"name": module.name, "class": type(module).__name__, "accuracy": out["accuracy"],
                     "citation": module.info.citation, "features": sorted(module.features)}
    report["speechprune_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "speechprune")
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    work = tmp_path_factory.mktemp("space")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(work / "modules"),
        "HF_HOME": str(work / "hf-home"),
        "PYTHONPATH": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(FOLDER), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_folder_holds_every_space_file():
    assert SPACE_FILES <= {p.name for p in FOLDER.iterdir()}


def test_card_parses_as_a_space_card_with_the_template_fields():
    card = SpaceCard.load(FOLDER / "README.md")
    data = card.data
    assert data.sdk == "gradio" and data.app_file == "app.py" and (FOLDER / data.app_file).is_file()
    # evaluate's launch_gradio_widget builds its inputs with gr.inputs, which gradio 4 removed
    assert Version(data.sdk_version).major == 3
    assert {"evaluate", "metric"} <= set(data.tags)
    assert data.title == "SPIRAL Accuracy" and data.get("description")


def test_app_is_python_that_launches_the_widget_on_the_file_beside_it():
    tree = ast.parse((FOLDER / "app.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None) for node in calls}
    assert {"load", "launch_gradio_widget"} <= names
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "evaluate" in imported and not any(m.startswith("speechprune") for m in imported)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "spiral_accuracy.py" in strings and (FOLDER / "spiral_accuracy.py").is_file()


def test_requirements_name_what_the_space_imports():
    lines = [line.strip() for line in (FOLDER / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    for requirement in requirements:  # the versions tested here satisfy them
        assert requirement.specifier.contains(version(requirement.name), prereleases=True), requirement
    named = {r.name for r in requirements}
    for file in ("spiral_accuracy.py", "app.py"):
        tree = ast.parse((FOLDER / file).read_text())
        modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        third_party = modules - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= named, (file, third_party - named)


@pytest.mark.slow
def test_how_to_use_runs_without_speechprune(child):
    assert child["speechprune_imported"] == []
    assert child["how_to_use"]["blocks"] >= 1
    expected = compute_spiral_accuracy(["B", "The answer is (C).", "I think A and B"], ["B", "C", "A"])
    assert child["how_to_use"]["results"] == expected
    assert child["examples"]["attempted"] >= 1 and child["examples"]["failed"] == 0


@pytest.mark.slow
def test_tests_py_cases_hold_through_evaluate_load(child):
    assert len(child["cases"]) >= 3
    for case in child["cases"]:
        assert case["got"] == pytest.approx(case["expected"]), case


@pytest.mark.slow
def test_app_launches_the_metric_from_a_copy_under_another_name(child):
    app = child["app"]
    assert (app["name"], app["class"]) == ("spiral_accuracy", "SpiralAccuracy")
    assert app["accuracy"] == pytest.approx(2 / 3) and app["features"] == ["predictions", "references"]
    assert app["citation"] == CITATION


def test_one_bibtex_in_all_three_cards():
    from speechprune.dataset_script import card as dataset_card
    from speechprune.export_model import CARD_TEMPLATE

    metric_card = (FOLDER / "README.md").read_text()
    (block,) = re.findall(r"```bibtex\n(.*?)```", metric_card, flags=re.S)
    assert block == CITATION  # the Space shows its card as it stands, so it holds the text verbatim
    assert "@inproceedings{lin2025speechprune" in CITATION and "ICME" in CITATION
    for template in (dataset_card.TEMPLATE, CARD_TEMPLATE):
        text = Path(template).read_text()
        assert "```bibtex\n{{ citation }}```" in text and "@" not in text.split("```bibtex", 1)[1]
    authors = re.search(r"author\s*=\s*\{(.*?)\},\n", CITATION, flags=re.S).group(1)
    assert [a.strip() for a in " ".join(authors.split()).split(" and ")] == [
        "Lin, Yueqian",
        "Fu, Yuzhe",
        "Zhang, Jingyang",
        "Liu, Yudong",
        "Zhang, Jianyi",
        "Sun, Jingwei",
        "Li, Hai Helen",
        "Chen, Yiran",
    ]
