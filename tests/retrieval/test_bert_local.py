"""Pre-trained BERT the way users get it: the shipped MiniLM folder, a local folder, a hub id that reaches
``from_pretrained`` as is (checked with the network off), and one-line errors when the weights are absent."""

from __future__ import annotations

import socket

import pytest
import torch

from retrieval.cli import main
from retrieval.data.bert import bert_architecture, check_bert_dir, default_bert_dir, is_local, load_bert, load_tokenizer
from retrieval.models import MODELS, build_model
from shared.errors import UserError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: nothing here may download."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_shipped_minilm_tokenizer_and_model():
    tokenizer = load_tokenizer()
    batch = tokenizer(["A small red cube left of a blue sphere.", "Two dogs play"], padding=True, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens[:4] == ["[CLS]", "a", "small", "red"] and "[UNK]" not in tokens
    model = load_bert().eval()
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape == (2, batch["input_ids"].shape[1], 384) and torch.isfinite(out).all()


def test_a_local_folder_path_loads_offline():
    folder = default_bert_dir()
    assert is_local(str(folder)) and not is_local("bert-base-uncased") and not is_local("org/some-bert")
    assert load_tokenizer(str(folder)).vocab_size == load_tokenizer().vocab_size
    assert bert_architecture(str(folder)).hidden_size == 384


def test_directories_are_validated(tmp_path):
    assert check_bert_dir(None) == default_bert_dir()
    with pytest.raises(UserError, match="not a directory"):
        load_bert(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="config.json missing"):
        check_bert_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no vocab.txt or tokenizer.json"):
        check_bert_dir(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert check_bert_dir(tmp_path) == tmp_path
    with pytest.raises(UserError, match=r"no model.safetensors .*model.bert.pretrained=false"):
        load_bert(tmp_path)


class Recorder:
    """Stands in for ``from_pretrained``: records its arguments, returns `result` or raises `error`."""

    def __init__(self, result=None, error=None):
        self.calls, self.result, self.error = [], result, error

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return self.result


def test_a_hub_id_reaches_from_pretrained_as_is(monkeypatch):
    from transformers import AutoModel, BertTokenizerFast

    tokenizer, model = load_tokenizer(), load_bert()  # the shipped ones stand in for the hub's files
    tok_calls, model_calls = Recorder(tokenizer), Recorder(model)
    monkeypatch.setattr(BertTokenizerFast, "from_pretrained", tok_calls)
    monkeypatch.setattr(AutoModel, "from_pretrained", model_calls)
    assert load_tokenizer("bert-base-uncased") is tokenizer and load_bert("bert-base-uncased") is model
    # the id itself, without local_files_only: the hub or its cache decides (HF_HUB_OFFLINE keeps it offline)
    assert tok_calls.calls == [(("bert-base-uncased",), {})] and model_calls.calls == [(("bert-base-uncased",), {})]


def test_absent_hub_weights_are_one_line_naming_the_key(monkeypatch):
    from transformers import AutoModel

    monkeypatch.setattr(AutoModel, "from_pretrained", Recorder(error=OSError("We couldn't connect to the hub")))
    with pytest.raises(UserError, match=r"model.bert.source bert-base-uncased: the model weights .* "
                                        r"set model.bert.source=PATH .* model.bert.pretrained=false") as err:
        load_bert("bert-base-uncased")
    assert "\n" not in str(err.value)


def test_an_uncached_hub_id_offline_is_a_user_error(monkeypatch):
    """The real loaders with HF_HUB_OFFLINE=1 on an id no cache holds: transformers builds an empty
    tokenizer instead of failing, which must not pass as the model's vocabulary."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="tokenizer files are not in the local Hugging Face cache"):
        load_tokenizer("facevl-tests/absent-bert")
    with pytest.raises(UserError, match="model weights are not in the local Hugging Face cache"):
        load_bert("facevl-tests/absent-bert")


def test_paper_architecture_without_weights_is_bert_base():
    """`retrieval info` on the paper config: the BERT-base architecture from its published sizes."""
    config = MODELS.load_config("hire_i2t", "f30k")
    assert config["model"]["bert"]["source"] == "bert-base-uncased"
    model = build_model("hire_i2t", config, pretrained=False)
    bert = model.text_encoder.bert
    assert (bert.config.num_hidden_layers, bert.config.hidden_size, bert.config.vocab_size) == (12, 768, 30522)
    params = sum(p.numel() for p in bert.parameters())
    assert 108_000_000 < params < 111_000_000  # BERT-base without its pooler: 108.9M


def test_training_the_paper_config_offline_without_weights_names_the_fix(tmp_path, monkeypatch, capsys):
    from transformers import BertTokenizerFast

    from .fixtures import write_precomp

    data = write_precomp(tmp_path, splits={"train": 4, "dev": 2})
    monkeypatch.setattr(BertTokenizerFast, "from_pretrained", Recorder(error=OSError("offline")))
    assert main(["train", "--model", "hire_i2t", "--config", "hire_i2t_f30k", "--data", str(data),
                 "--out", str(tmp_path / "run"), "--init-from", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.bert.source=PATH" in err and "vocabulary is needed" in err
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_tiny_configs_start_from_the_first_two_pretrained_minilm_layers():
    """The BERT-tower tiny configs keep MiniLM's first 2 pre-trained layers with fixed embeddings (the
    default job's budget); ``model.bert.layers=null`` trains all 6 on purpose."""
    reference = load_bert().state_dict()
    keys = ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
            "encoder.layer.1.output.dense.weight"]
    for name in ("hire_i2t", "hire_t2i", "3shnet", "vse_gpo"):
        config = MODELS.load_config(name)
        assert config["model"]["bert"]["pretrained"] is True and config["model"]["bert"]["layers"] == 2
        model = build_model(name, config)
        bert = model.text_encoder.bert if name.startswith("hire") else model.text.encoder.bert
        assert len(bert.encoder.layer) == 2 and not bert.embeddings.word_embeddings.weight.requires_grad
        for key in keys:
            assert torch.equal(bert.state_dict()[key], reference[key]), (name, key)
    config = MODELS.load_config("vse_gpo", None, ["model.bert.layers=null"])
    assert len(build_model("vse_gpo", config).text.encoder.bert.encoder.layer) == 6


@pytest.mark.parametrize("name,key", [("hire_i2t", "text_encoder.bert"), ("hire_t2i", "text_encoder.bert"),
                                      ("3shnet", "text.encoder.bert"), ("vse_gpo", "text.encoder.bert")])
def test_tiny_lr_scales_say_what_they_do(name, key):
    """Configs deep-merge: the tiny file states the BERT scale it trains with."""
    assert MODELS.load_config(name)["train"]["lr_scales"] == {key: 0.1}



def test_truncated_minilm_keeps_the_pretrained_lower_layers():
    """``model.bert.layers: N`` keeps the first N pre-trained layers: its output is the full encoder's
    N-th hidden state; ``freeze_embeddings`` leaves the embeddings out of the optimiser."""
    from retrieval.layers.bert import BertConfig, bert_from_config
    from shared.schedule import parameter_groups

    batch = load_tokenizer()(["A small red cube left of a blue sphere."], return_tensors="pt")
    full = load_bert().eval()
    short = bert_from_config(BertConfig(source=None, layers=2, freeze_embeddings=True)).eval()
    with torch.no_grad():
        expected = full(**batch, output_hidden_states=True).hidden_states[2]
        got = short(**batch).last_hidden_state
    assert len(short.encoder.layer) == short.config.num_hidden_layers == 2
    assert torch.allclose(got, expected, atol=1e-5)
    trained = {id(p) for group in parameter_groups(short) for p in group["params"]}
    assert not any(id(p) in trained for p in short.embeddings.parameters())
    assert all(id(p) in trained for p in short.encoder.parameters())
    rebuilt = bert_from_config(BertConfig(source=None, pretrained=False, layers=2, freeze_embeddings=True))
    assert rebuilt.state_dict().keys() == short.state_dict().keys()  # a checkpoint's tensors fit before loading
    for bad in (BertConfig(source=None, layers=7), BertConfig(source=None, layers=0)):
        with pytest.raises(ValueError):
            bert_from_config(bad)
