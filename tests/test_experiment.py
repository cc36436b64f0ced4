"""Experiment configs: shipped files parse, overrides apply, mistakes are reported clearly."""

import pytest

from training.experiment import available_experiments, load_experiment


def test_shipped_configs_parse_with_reference_hyperparameters():
    assert {"imder_mosi", "imder_mosei", "quick_synthetic", "imder_synthetic_mosi"} <= set(available_experiments())
    mosi = load_experiment("imder_mosi")
    assert (mosi.train.batch_size, mosi.train.learning_rate, mosi.train.scheduler_patience) == (32, 0.002, 24)
    assert (mosi.train.early_stop, mosi.train.grad_clip, mosi.fusion.nlevels) == (20, 1.0, 4)
    mosei = load_experiment("imder_mosei")
    assert (mosei.train.batch_size, mosei.train.scheduler_patience, mosei.train.grad_clip) == (128, 5, 0.6)
    assert mosei.fusion.nlevels == 6
    assert mosi.method_options["train_sampler_steps"] == 100


def test_overrides_and_errors(tmp_path):
    exp = load_experiment("imder_mosi", ["train.batch_size=8", "model.options.sampler_steps=20",
                                         "train.device=cpu", 'data.path="x.pkl"'])
    assert exp.train.batch_size == 8 and exp.method_options["sampler_steps"] == 20
    assert exp.train.device == "cpu" and exp.data.path == "x.pkl"
    with pytest.raises(ValueError, match="unknown key"):
        load_experiment("imder_mosi", ["train.batchsize=8"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_experiment("imder_mosi", ["train.batch_size"])
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_experiment("no_such_experiment")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nmethod='imder'\n[optimizer]\nlr=1\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_experiment(str(bad))


def test_mmin_configs_follow_mmins_public_scripts():
    """AIM3-RUC/MMIN scripts: IEMOCAP lr 2e-4 selected on UAR, MSP-IMPROV lr 5e-4 selected on macro-F1."""
    from training.experiment import load_experiment

    iemocap, msp = load_experiment("cmarr_iemocap"), load_experiment("cmarr_msp")
    assert (iemocap.train.learning_rate, iemocap.train.key_eval) == (2e-4, "uar")
    assert (msp.train.learning_rate, msp.train.key_eval) == (5e-4, "macro_f1")
    assert iemocap.train.batch_size == msp.train.batch_size == 128


def test_synthetic_mmsa_with_default_dims_and_another_length_loads(tmp_path):
    """The synthetic cache name is built when only the sequence length is changed (it used to map over ``None``)."""
    from training.runner import load_data

    exp = load_experiment("cmarr_mosi", ["data.synthetic=true", "data.synthetic_sizes=[12, 4, 4]",
                                         "data.synthetic_seq_len=6"])
    data = load_data(exp, tmp_path)
    assert data.specs.text.seq_len == data.specs.audio.seq_len == 6
    assert data.specs.text.dim == 768
    assert len(list(tmp_path.glob("synthetic_mosi_*_ddefault_l6_*.pkl"))) == 1


def test_imder_configs_take_berts_stage1_rate_per_dataset_from_the_mmsa_convention():
    """RoHyDR's config.json (the same group's MMSA-style config): learning_rate_bert 2e-5 MOSI, 2e-6 MOSEI."""
    from imer_core.config import options_from_dict
    from imer_core.methods.imder import IMDerOptions

    rates = {name: options_from_dict(IMDerOptions, load_experiment(name).method_options).bert_learning_rate
             for name in ("imder_mosi", "imder_mosei")}
    assert rates == {"imder_mosi": 2e-5, "imder_mosei": 2e-6}
