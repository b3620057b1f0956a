"""A built SPIRAL folder as the Hub reads it: the card (DatasetCard), both configs (load_dataset) and eval.yaml
(inspect-ai's FieldSpec and hf_dataset, the framework that eval.yaml names)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from datasets import load_dataset
from huggingface_hub import DatasetCard

from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.dataset_script.build import build_spiral
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import CITATION

HARD = ["meeting_0", "lecture_1"]
pytestmark = pytest.mark.slow  # one small espeak-ng build for the module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """4 sample dialogues, 2 of them in the hard subset (an id list, as `derive-hard` writes it)."""
    root = tmp_path_factory.mktemp("card")
    hard = root / "hard_ids.txt"
    hard.write_text("\n".join(HARD) + "\n")
    out = root / "spiral"
    build_spiral(SAMPLE_ANNOTATIONS, out, hard=hard, limit=4, progress=False, repo_id="someone/spiral")
    return {"out": out, "cache": str(root / "hf-cache")}


def _sections(text: str) -> list[str]:
    return re.findall(r"^(#{2,3} .+)$", text, flags=re.M)


def test_card_metadata_as_the_hub_reads_it(built):
    data = DatasetCard.load(built["out"] / "README.md").data
    assert data.task_categories == ["multiple-choice", "audio-classification"]  # audio-text-to-text is hidden
    assert data.task_ids == ["multiple-choice-qa"]
    assert data.annotations_creators == ["machine-generated"] and data.source_datasets == ["original"]
    assert data.language == ["en"] and data.license == "unknown" and data.size_categories == ["n<1K"]
    assert {c["config_name"] for c in data.configs} == {"spiral", "spiral_h"}


def test_card_has_the_template_sections_and_one_citation(built):
    text = DatasetCard.load(built["out"] / "README.md").text
    sections = _sections(text)
    for heading in ("## Uses", "## Bias, Risks and Limitations", "## Citation", "## Dataset Card Contact"):
        assert heading in sections, heading
    # the letter-bias table belongs to the risks
    risks = sections.index("## Bias, Risks and Limitations")
    assert sections[risks + 1] == "### Answer-letter bias"
    assert "always `" in text.split("### Answer-letter bias", 1)[1].split("\n## ", 1)[0]
    assert text.count("```bibtex") == 1 and "```bibtex\n" + CITATION + "```" in text
    assert "someone/spiral" in text.split("## Dataset Card Contact", 1)[1]


def test_both_configs_load_and_agree_with_the_card(built):
    out, cache = built["out"], built["cache"]
    spiral = load_dataset(str(out), "spiral", split="test", cache_dir=cache)
    hard = load_dataset(str(out), "spiral_h", split="test", cache_dir=cache)
    sample_ids = [json.loads(line)["metadata"]["id"] for line in SAMPLE_ANNOTATIONS.read_text().splitlines()[:4]]
    assert spiral["id"] == sample_ids and sorted(hard["id"]) == sorted(HARD)
    text = (out / "README.md").read_text()
    assert f"| `spiral` (default) | `test` | {len(spiral)} |" in text
    assert f"| `spiral_h` | `test` | {len(hard)} |" in text


def test_eval_yaml_fields_are_inspect_ai_field_specs_that_read_the_folder(built, tmp_path, monkeypatch):
    from inspect_ai.dataset import FieldSpec, hf_dataset

    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "inspect-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = built["out"]
    spec = yaml.safe_load((out / "eval.yaml").read_text())
    assert spec["evaluation_framework"] == "inspect-ai"
    assert [task["id"] for task in spec["tasks"]] == ["spiral", "spiral_h"]
    for task in spec["tasks"]:
        fields = FieldSpec(**task["field_spec"])  # an unknown key would be a TypeError
        rows = load_dataset(str(out), task["config"], split=task["split"], cache_dir=built["cache"])
        samples = hf_dataset(str(out), split=task["split"], name=task["config"], sample_fields=fields, cached=False)
        assert len(samples) == len(rows)
        for sample, row in zip(samples, rows, strict=True):
            assert (sample.id, sample.input, sample.target) == (row["id"], row["question"], row["answer"])
            assert sample.choices == row["choices"]
            assert set(sample.metadata) == set(task["field_spec"]["metadata"])
            assert sample.metadata["audio_source"] == "espeak-ng"


def test_a_folder_hashes_as_its_upload_does(built, tmp_path):
    """`submit` keeps a local run's content hash beside the Hub commit; the Hub copy must give the same hash."""
    import shutil

    from speechprune.dataset_script.build import STATE_DIR
    from speechprune.evaluation.provenance import content_hash

    out = built["out"]
    assert (out / STATE_DIR).is_dir()  # the resume state, which push_to_hub leaves out
    uploaded = tmp_path / "snapshot"
    shutil.copytree(out, uploaded, ignore=shutil.ignore_patterns(STATE_DIR))
    (uploaded / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")  # the Hub adds it
    assert content_hash(uploaded) == content_hash(out)
    (uploaded / "data" / "spiral" / "extra.parquet").write_bytes(b"x")
    assert content_hash(uploaded) != content_hash(out)
