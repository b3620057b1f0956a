"""llm_attention's eager view: the shared model is never changed, so other threads may use it meanwhile.

The reference for every check is the stock model: its eager ``output_attentions`` (as in
tests/test_families.py) and its own sdpa logits. Two threads are interleaved deterministically with
events, at the two places where a pruned call used to touch shared state: the capture hook on the
language model and the layer whose attention probabilities are read.
"""

import functools
import threading

import torch
from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module

from speechprune.modeling.families import ADAPTERS
from speechprune.testing import tiny_family, tiny_family_inputs

FAMILY = "audioflamingo3"  # the default capture (a hook on the language model) and a Qwen2 decoder


@functools.cache
def setup():
    stock = tiny_family(FAMILY, seed=0)
    model = tiny_family(FAMILY, seed=0, pruning_method="llm_attention", pruning_rate=0.4, attention_layer=1)
    batch = tiny_family_inputs(stock, [12.0, 5.0], seed=1)
    eager = tiny_family(FAMILY, seed=0)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        reference = eager(**stock_args(batch), output_attentions=True).attentions[1]
        stock_logits = stock(**stock_args(batch)).logits
    return stock, model, batch, reference, stock_logits


def stock_args(batch):
    return {k: v for k, v in batch.items() if k != "query_mask"}


def test_another_thread_runs_the_stock_model_while_llm_attention_is_inside_the_model():
    _, model, batch, _, stock_logits = setup()
    with torch.no_grad():
        alone = model(**batch).selection
    language_model = ADAPTERS[FAMILY].language_model(model)
    attention = language_model.layers[1].self_attn
    # The worker stops at each hook below; the main thread checks the shared model, then lets it go on.
    meet, worker, places = threading.Barrier(2), {}, []

    def pause(module, *_):
        if threading.current_thread() is worker["thread"]:
            places.append(module is language_model or module is attention)  # False: a copy in the eager view
            meet.wait(60)  # arrived
            meet.wait(60)  # released

    def run():
        try:
            with torch.no_grad():
                worker["selection"] = model(**batch).selection
        finally:
            meet.abort()  # no more stops: the main thread's next wait ends

    hooks = [
        language_model.register_forward_pre_hook(pause),  # registered before the capture hook, so it runs first
        attention.register_forward_pre_hook(pause),  # the eager view's copies share the model's hooks
    ]
    worker["thread"] = threading.Thread(target=run)
    try:
        worker["thread"].start()
        while True:
            try:
                meet.wait(60)
            except threading.BrokenBarrierError:
                break
            # The shared config keeps its kernel, and the stock path runs meanwhile, bit for bit.
            assert language_model.config._attn_implementation == "sdpa", places
            with torch.no_grad():
                assert torch.equal(model(**batch, pruning_method="full").logits, stock_logits), places
            meet.wait(60)
    finally:
        for hook in hooks:
            hook.remove()
        meet.abort()
        worker["thread"].join(60)
    # Capture, the eager view (its language model and its layer 1), then the pruned prefill (both hooks).
    assert places == [True, False, False, True, True]
    assert all(torch.equal(a["kept"], b["kept"]) for a, b in zip(worker["selection"], alone))


class Recorder(ModelHook):
    """An accelerate hook that records which module object it ran for (a device map installs such hooks)."""

    def __init__(self, seen: list):
        self.seen = seen

    def pre_forward(self, module, *args, **kwargs):
        self.seen.append(module)
        return args, kwargs


def test_a_dispatched_model_runs_its_device_hooks_on_the_eager_view():
    """accelerate binds ``forward`` to each hooked module; the view binds its copies, and still matches eager."""
    _, model, batch, reference, _ = setup()
    adapter = ADAPTERS[FAMILY]
    layers = adapter.decoder_layers(model)
    seen = []
    for layer in layers:
        add_hook_to_module(layer, Recorder(seen))
    try:
        captured = adapter.capture(model, super(type(model), model).forward, stock_args(batch))
        ours = adapter.attention_weights(model, captured, 1)
    finally:
        for layer in layers:
            remove_hook_from_module(layer)
    assert len(seen) == 2 and not any(module is layer for module in seen for layer in layers)
    mask = batch["attention_mask"].bool()
    for b in range(2):  # padding rows are free to differ; every real query row must match
        torch.testing.assert_close(ours[b][:, mask[b]], reference[b][:, mask[b]], rtol=0, atol=1e-5)
