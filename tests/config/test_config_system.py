"""Config system: defaults, _BASE_ chains, overrides with type checks, unknown keys, freezing, dump."""

import pickle

import pytest
import yaml

from mrcnn.config import CfgNode, ConfigError, get_cfg, parse_literal


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults_hold_detectron2_names():
    cfg = get_cfg()
    assert cfg.MODEL.RPN.NMS_THRESH == 0.7
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80
    assert cfg.SOLVER.IMS_PER_BATCH == 16
    assert cfg.VERSION == 2
    keys = cfg.all_keys()
    assert "MODEL.WEIGHTS" in keys and "INPUT.MIN_SIZE_TRAIN" in keys and "OUTPUT_DIR" in keys
    assert len(keys) > 150


def test_get_cfg_returns_independent_copies():
    first, second = get_cfg(), get_cfg()
    first.SOLVER.BASE_LR = 1.0
    assert second.SOLVER.BASE_LR != 1.0


def test_base_chain_of_three_levels_with_relative_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    _write(tmp_path / "root.yaml", "SOLVER:\n  BASE_LR: 0.5\n  MAX_ITER: 10\nMODEL:\n  MASK_ON: false\n")
    _write(tmp_path / "a" / "mid.yaml", "_BASE_: ../root.yaml\nSOLVER:\n  MAX_ITER: 20\n")
    leaf = _write(tmp_path / "a" / "b" / "leaf.yaml", "_BASE_: ../mid.yaml\nSOLVER:\n  STEPS: (5, 8)\n")
    cfg = get_cfg()
    cfg.merge_from_file(leaf)
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.SOLVER.MAX_ITER == 20  # the nearer file wins
    assert cfg.SOLVER.STEPS == [5, 8]  # a tuple literal, as detectron2 files write them
    assert cfg.MODEL.MASK_ON is False


def test_missing_base_names_the_path_looked_for(tmp_path):
    leaf = _write(tmp_path / "leaf.yaml", "_BASE_: nowhere/base.yaml\n")
    with pytest.raises(FileNotFoundError) as info:
        get_cfg().merge_from_file(leaf)
    assert str(tmp_path / "nowhere" / "base.yaml") in str(info.value)
    assert "leaf.yaml" in str(info.value)


def test_unknown_key_in_file_names_key_and_suggestions(tmp_path):
    path = _write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    message = str(info.value)
    assert "SOLVER.BASE_LRR" in message and "SOLVER.BASE_LR" in message and "bad.yaml" in message


def test_unknown_key_on_command_line():
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list(["MODEL.RPN.NMS_THRES", "0.5"])
    assert "MODEL.RPN.NMS_THRES" in str(info.value)
    assert "MODEL.RPN.NMS_THRESH" in str(info.value)


def test_command_line_values_are_typed():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "SOLVER.MAX_ITER",
            "100",
            "SOLVER.BASE_LR",
            "1e-3",
            "MODEL.MASK_ON",
            "False",
            "DATASETS.TRAIN",
            "shapes_train",
            "INPUT.MIN_SIZE_TRAIN",
            "(640, 672)",
            "SOLVER.BASE_LR_END",
            "0",
        ]
    )
    assert cfg.SOLVER.MAX_ITER == 100 and isinstance(cfg.SOLVER.MAX_ITER, int)
    assert cfg.SOLVER.BASE_LR == pytest.approx(1e-3)
    assert cfg.MODEL.MASK_ON is False
    assert cfg.DATASETS.TRAIN == ["shapes_train"]
    assert cfg.INPUT.MIN_SIZE_TRAIN == [640, 672]
    assert isinstance(cfg.SOLVER.BASE_LR_END, float)


@pytest.mark.parametrize(
    "key, value, wanted",
    [
        ("SOLVER.MAX_ITER", "abc", "an int"),
        ("SOLVER.BASE_LR", "fast", "a float"),
        ("MODEL.MASK_ON", "3", "a bool"),
        ("MODEL.WEIGHTS", "[1, 2]", "a string"),
    ],
)
def test_type_errors_say_what_the_key_wants(key, value, wanted):
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list([key, value])
    assert key in str(info.value) and wanted in str(info.value)


def test_parse_literal_reads_python_literals_and_keeps_other_text():
    assert parse_literal("(0.5, 0.6)") == (0.5, 0.6)
    assert parse_literal("['a', 'b']") == ["a", "b"]
    assert parse_literal("0.25") == 0.25 and parse_literal("3") == 3
    assert parse_literal("TRUE") is True and parse_literal(" false") is False
    assert parse_literal("shapes_train") == "shapes_train" and parse_literal("1e-3x") == "1e-3x"


def test_odd_number_of_overrides_is_an_error():
    with pytest.raises(ConfigError):
        get_cfg().merge_from_list(["SOLVER.MAX_ITER"])


def test_freeze_blocks_changes_and_defrost_allows_them():
    cfg = get_cfg().freeze()
    with pytest.raises(AttributeError):
        cfg.SOLVER.MAX_ITER = 5
    with pytest.raises(AttributeError):
        cfg.merge_from_list(["SOLVER.MAX_ITER", "5"])
    cfg.defrost()
    cfg.SOLVER.MAX_ITER = 5
    assert cfg.SOLVER.MAX_ITER == 5


def test_dump_round_trips_through_yaml(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.STEPS", "(3, 4)", "OUTPUT_DIR", "/tmp/x"])
    path = _write(tmp_path / "dumped.yaml", cfg.dump())
    loaded = yaml.safe_load(open(path))
    assert loaded["SOLVER"]["STEPS"] == [3, 4]
    again = get_cfg()
    again.merge_from_file(path)
    assert again == cfg


def test_pickling_keeps_values_and_frozen_state():
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER = 7
    cfg.freeze()
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored.SOLVER.MAX_ITER == 7 and restored.is_frozen()


def test_interpolation_is_resolved():
    cfg = get_cfg()
    cfg.merge_from_list(["OUTPUT_DIR", "/runs/a", "MODEL.WEIGHTS", "${OUTPUT_DIR}/model_final.pth"])
    assert cfg.MODEL.WEIGHTS == "/runs/a/model_final.pth"


def test_plugins_can_extend_the_tree_in_python(tmp_path):
    cfg = get_cfg()
    cfg.MY_PLUGIN = CfgNode({"WIDTH": 3})
    cfg.merge_from_file(_write(tmp_path / "p.yaml", "MY_PLUGIN:\n  WIDTH: 5\n"))
    assert cfg.MY_PLUGIN.WIDTH == 5
