"""The defaults are the paper's values (§4, §5)."""
import argparse

import pytest

import config


def test_paper_constants():
    assert config.ALPHA == 5 and config.T_SEMI == 0.9 and config.LAMBDA_SEMI == 0.1
    assert (config.DEPTH_LR, config.DEPTH_MOMENTUM, config.DEPTH_WD) == (1e-3, 0.9, 5e-4)
    assert config.POLY_POWER == 0.9 and config.CONF_LR == 2e-4
    assert (config.EPOCHS, config.SEMI_START) == (100, 40)
    assert (config.INPUT_WIDTH, config.INPUT_HEIGHT) == (320, 240)
    assert (config.NYU_TRAIN, config.NYU_TEST, config.AUG_COPIES) == (795, 654, 9)
    assert config.NYU_TRAIN_AUGMENTED == 7155


def test_flag_defaults_are_the_paper_values():
    parser = argparse.ArgumentParser()
    config.add_model_args(parser)
    config.add_train_args(parser)
    config.add_run_args(parser)
    args = parser.parse_args([])
    assert (args.alpha, args.t_semi, args.lambda_semi) == (5.0, 0.9, 0.1)
    assert (args.lr, args.momentum, args.wd, args.poly_power, args.conf_lr) == (1e-3, 0.9, 5e-4, 0.9, 2e-4)
    assert (args.epochs, args.semi_start, args.labeled_frac) == (100, 40, 0.25)
    assert args.pretrained == 1 and args.gpus == []


@pytest.mark.parametrize("text", ["0", "1.5", "-0.25", "half"])
def test_labeled_frac_outside_unit_interval_is_rejected(text):
    with pytest.raises(argparse.ArgumentTypeError):
        config.fraction(text)


def test_size_and_gpus_parsing():
    assert config.parse_size("320x240") == (320, 240)
    assert config.parse_gpus("0,1") == [0, 1] and config.parse_gpus("") == []
    with pytest.raises(argparse.ArgumentTypeError):
        config.parse_size("320")
