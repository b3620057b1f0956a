"""An exported folder loads with trust_remote_code=True in a fresh, offline process, from its own code.

The child process loads the folder with the Auto classes, checks that the classes come from the copied
files (``transformers_modules``) and that the installed ``speechprune`` package was never imported,
runs a pruned generation, and loads a stock checkpoint in the legacy key layout with the copied class.
The parent compares its answers with the installed package's on the same inputs.
"""

import argparse
import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from speechprune import export_model
from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
from speechprune.modeling.processing_speechprune import SpeechPruneProcessor
from speechprune.testing import tiny_qwen2_audio

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from transformers import (
        AutoConfig, AutoModel, AutoModelForMultimodalLM, AutoModelForSeq2SeqLM, AutoProcessor,
        Qwen2AudioForConditionalGeneration,
    )

    repo, stock_dir = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(repo, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
    config = AutoConfig.from_pretrained(repo, trust_remote_code=True)
    generation_classes = [
        type(auto.from_pretrained(repo, trust_remote_code=True)).__name__
        for auto in (AutoModelForMultimodalLM, AutoModelForSeq2SeqLM)
    ]
    wave = np.random.default_rng(7).standard_normal(16000 * 50).astype(np.float32) * 0.1
    prompt = processor.spiral_prompt("Which city was named?", ["Oslo", "Rome", "Lima", "Kyiv"])
    inputs = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    kept = model.last_selection[0]["kept"].tolist()

    # A stock checkpoint in the legacy key layout, loaded with the copied class.
    remote_class = type(model)
    loaded, info = remote_class.from_pretrained(stock_dir, output_loading_info=True)
    stock = Qwen2AudioForConditionalGeneration.from_pretrained(stock_dir)
    ours, theirs = loaded.state_dict(), stock.state_dict()
    print(json.dumps({
        "model_module": type(model).__module__,
        "model_file": sys.modules[type(model).__module__].__file__,
        "processor_module": type(processor).__module__,
        "processor_class": type(processor).__name__,
        "config_module": type(config).__module__,
        "generation_classes": generation_classes,
        "speechprune_imported": any(name.split(".")[0] == "speechprune" for name in sys.modules),
        "num_windows": int(inputs.input_features.shape[0]),
        "output": out.tolist(),
        "kept": kept,
        "loading_problems": {k: sorted(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")},
        "stock_weights": ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs),
    }))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    args = [
        "--base",
        "tiny",
        "--out",
        str(root / "repo"),
        "--pruning-method",
        "speechprune",
        "--pruning-rate",
        "0.4",
    ]
    parser = argparse.ArgumentParser()
    export_model.configure(parser)
    repo = export_model.export_model(parser.parse_args(args))
    stock, processor = tiny_qwen2_audio(seed=0)
    stock.save_pretrained(root / "stock")
    processor.save_pretrained(root / "stock")
    return root, repo


@pytest.fixture(scope="module")
def child(exported):
    root, repo = exported
    return run_offline(root, CHILD, str(repo), str(root / "stock"))


def run_offline(root, code, *args):
    """Run ``code`` in a fresh, offline Python without this checkout on its path; its last line as JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(root / "modules"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=root, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_classes_come_from_the_copied_files(child, exported):
    root, _ = exported
    assert child["model_module"].startswith("transformers_modules.")
    assert child["model_module"].endswith(".modeling_speechprune")
    assert child["model_file"].startswith(str(root / "modules"))
    assert child["processor_module"].endswith(".processing_speechprune")
    assert child["processor_class"] == "SpeechPruneProcessor"
    assert child["config_module"].endswith(".configuration_speechprune")
    assert child["generation_classes"] == ["Qwen2AudioSpeechPruneForConditionalGeneration"] * 2
    assert child["speechprune_imported"] is False


def test_remote_generation_matches_the_installed_package(child, exported):
    _, repo = exported
    model = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(repo)
    processor = SpeechPruneProcessor.from_pretrained(repo)
    wave = np.random.default_rng(7).standard_normal(16000 * 50).astype(np.float32) * 0.1
    prompt = processor.spiral_prompt("Which city was named?", ["Oslo", "Rome", "Lima", "Kyiv"])
    inputs = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert child["num_windows"] == 2  # the remote processor kept the audio after 30 s
    assert child["output"] == out.tolist()
    assert child["kept"] == model.last_selection[0]["kept"].tolist()
    assert len(child["kept"]) == 450  # 1250 tokens -> 750 by phase 1 -> 450 at rate 0.4


def test_remote_class_loads_a_legacy_stock_checkpoint(child):
    assert child["loading_problems"] == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert child["stock_weights"] is True


def test_copied_code_imports_only_torch_transformers_and_its_siblings(exported):
    _, repo = exported
    allowed = {"torch", "transformers", "huggingface_hub", "numpy", "__future__", "re", "math", "hashlib"}
    allowed |= {"numbers", "operator", "weakref", "collections", "typing", "dataclasses", "difflib", "fractions"}
    allowed |= {"inspect", "logging", "copy", "functools", "threading", "types"}
    for name in export_model_code_files(repo):
        tree = ast.parse((repo / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: sibling files, which must have been copied too
                    siblings = [node.module] if node.module else [alias.name for alias in node.names]
                    assert all((repo / f"{sibling}.py").exists() for sibling in siblings), (name, siblings)
                    continue
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, (name, roots)


def export_model_code_files(repo):
    names = [p.name for p in repo.iterdir() if p.suffix == ".py"]
    assert {"modeling_speechprune.py", "configuration_speechprune.py", "processing_speechprune.py"} <= set(names)
    return names


def test_saved_config_loads_back_with_auto_map(exported):
    _, repo = exported
    config = json.loads((repo / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM"}
    assert torch.equal(  # sanity: the exported weights are the tiny model's
        Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(repo).lm_head.weight,
        tiny_qwen2_audio(seed=0)[0].lm_head.weight,
    )


# ------------------------------------------------------------------------------------------------
# Every other family: a model pruned with speechprune.prune, saved, reloaded from its own code

FAMILY_CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    import transformers
    from transformers import AutoModel

    results = {}
    for family, repo, auto_names in json.loads(sys.argv[1]):
        inputs = torch.load(f"{repo}/inputs.pt")
        model = AutoModel.from_pretrained(repo, trust_remote_code=True)
        autos = [getattr(transformers, name) for name in auto_names]
        classes = [type(auto.from_pretrained(repo, trust_remote_code=True)) for auto in autos]
        with torch.no_grad():
            out = model(**inputs)
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        results[family] = {
            "class": type(model).__name__,
            "modules": sorted({c.__module__ for c in [type(model), *classes]}),
            "generation_classes": [c.__name__ for c in classes],
            "kept": [s["kept"].tolist() for s in out.selection],
            "logits": out.logits.tolist(),
            "generated": generated.tolist(),
            "settings": [model.config.pruning_method, model.config.pruning_rate, model.config.phase1_tokens],
        }
    print(json.dumps({
        "results": results,
        "speechprune_imported": any(name.split(".")[0] == "speechprune" for name in sys.modules),
    }))
    """
)


@pytest.fixture(scope="module")
def family_child(tmp_path_factory):
    import speechprune
    from speechprune.modeling.families import ADAPTERS
    from speechprune.modeling.modeling_speechprune import PRUNING_CLASSES
    from speechprune.testing import TINY_FAMILIES, tiny_family, tiny_family_inputs

    root = tmp_path_factory.mktemp("families")
    jobs, expected = [], {}
    for family in TINY_FAMILIES:
        model = speechprune.prune(tiny_family(family), pruning_method="speechprune", pruning_rate=0.5)
        repo = root / family
        model.save_pretrained(repo)
        inputs = tiny_family_inputs(model, [35.0, 8.0], seed=3)
        torch.save(inputs, repo / "inputs.pt")
        # The installed class loaded from the same folder (loading picks the same kernels, e.g. MoE experts').
        installed = PRUNING_CLASSES[family].from_pretrained(repo)
        with torch.no_grad():
            out = installed(**inputs)
        expected[family] = (out, installed.generate(**inputs, max_new_tokens=3, do_sample=False))
        jobs.append((family, str(repo), list(ADAPTERS[family].generation_auto_classes)))
    return run_offline(root, FAMILY_CHILD, json.dumps(jobs)), expected


@pytest.mark.slow
def test_every_family_reloads_as_its_pruning_class_from_the_copied_code(family_child):
    from speechprune.modeling.families import ADAPTERS

    child, expected = family_child
    assert child["speechprune_imported"] is False
    for family, got in child["results"].items():
        adapter = ADAPTERS[family]
        assert got["class"] == adapter.pruning_class
        assert got["generation_classes"] == [adapter.pruning_class] * len(adapter.generation_auto_classes)
        assert all(module.startswith("transformers_modules.") for module in got["modules"]), got["modules"]
        assert got["settings"] == ["speechprune", 0.5, adapter.tokens_per_window]
        out, generated = expected[family]
        assert got["kept"] == [s["kept"].tolist() for s in out.selection]
        # Same code and weights; another process may pick other CPU kernels (the MoE experts' do), so 1e-5.
        torch.testing.assert_close(torch.tensor(got["logits"]), out.logits, rtol=0, atol=1e-5)
        assert got["generated"] == generated.tolist()
