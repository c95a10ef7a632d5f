"""Command line, config assembly with plugins, and per-process set-up."""

import sys
import textwrap

import pytest
import yaml

from mrcnn.config import get_cfg
from mrcnn.engine import config_from_args, config_from_file, default_argument_parser, default_setup
from mrcnn.utils.plugins import import_plugins, plugin_names_from_sources


def test_argument_parser_flags_and_overrides():
    args = default_argument_parser().parse_args(
        [
            "--config-file",
            "a.yaml",
            "--resume",
            "--num-gpus",
            "2",
            "--plugin",
            "p1",
            "--plugin",
            "p2",
            "SOLVER.BASE_LR",
            "0.5",
            "MODEL.DEVICE",
            "cpu",
        ]
    )
    assert args.config_file == "a.yaml" and args.resume and not args.eval_only
    assert args.num_gpus == 2 and args.num_machines == 1 and args.machine_rank == 0 and args.dist_url == "auto"
    assert args.plugin == ["p1", "p2"]
    assert args.opts == ["SOLVER.BASE_LR", "0.5", "MODEL.DEVICE", "cpu"]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_keys.py").write_text(
        textwrap.dedent("""
        from mrcnn.config import CfgNode
        IMPORTED = True
        def add_config(cfg):
            if "MY_PLUGIN" not in cfg:
                cfg.MY_PLUGIN = CfgNode({"WIDTH": 4})
    """)
    )
    (tmp_path / "my_other_plugin.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("my_plugin_keys", "my_other_plugin"):
        sys.modules.pop(name, None)


def test_config_from_args_imports_plugins_before_merging(plugin_dir):
    config_file = plugin_dir / "cfg.yaml"
    config_file.write_text(yaml.safe_dump({"MODEL": {"PLUGINS": ["my_plugin_keys"]}, "MY_PLUGIN": {"WIDTH": 16}}))
    args = default_argument_parser().parse_args(
        ["--config-file", str(config_file), "--plugin", "my_other_plugin", "MY_PLUGIN.WIDTH", "32"]
    )
    cfg = config_from_args(args)
    assert cfg.MY_PLUGIN.WIDTH == 32  # the key exists because the plugin added it before the merge
    assert cfg.MODEL.PLUGINS == ["my_plugin_keys", "my_other_plugin"]
    assert sys.modules["my_other_plugin"].VALUE == 1
    assert plugin_names_from_sources(None, ["MODEL.PLUGINS", "['a', 'b']"], ["b", "c"]) == ["a", "b", "c"]


def test_config_from_file_applies_a_tools_flags_between_file_and_opts(tmp_path):
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text(yaml.safe_dump({"MODEL": {"ROI_HEADS": {"SCORE_THRESH_TEST": 0.1}}}))
    threshold = {"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.7}
    assert config_from_file(str(config_file), overrides=threshold).MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.7
    cfg = config_from_file(str(config_file), ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.3"], overrides=threshold)
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.3 and not cfg.is_frozen()


def test_plugin_package_in_the_working_directory_imports_like_python_dash_m(tmp_path, monkeypatch):
    package = tmp_path / "cwd_plugins" / "my_cwd_plugin"  # cwd_plugins/ is a namespace package
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 5\n")
    monkeypatch.chdir(tmp_path)
    # nothing on sys.path leads to tmp_path ("" would stand for the working directory)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        (module,) = import_plugins(["cwd_plugins.my_cwd_plugin"])
        assert module.VALUE == 5 and sys.path[-1] == str(tmp_path)  # appended: shadows nothing
        with pytest.raises(ImportError, match="cwd_plugins.missing"):
            import_plugins(["cwd_plugins.missing"])  # the package is found; its module is not
    finally:
        for name in ("cwd_plugins", "cwd_plugins.my_cwd_plugin"):
            sys.modules.pop(name, None)


def test_unimportable_plugin_names_the_module():
    with pytest.raises(ImportError, match="no_such_plugin_module"):
        import_plugins(["no_such_plugin_module"])
    args = default_argument_parser().parse_args(["--plugin", "projects.no_such_project"])
    with pytest.raises(ImportError, match="projects.no_such_project.*MODEL.PLUGINS"):
        config_from_args(args)


def test_default_setup_writes_config_and_log(tmp_path):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    cfg.SEED = 7
    cfg.SOLVER.BASE_LR = 0.123
    cfg.freeze()
    args = default_argument_parser().parse_args([])
    default_setup(cfg, args)
    saved = get_cfg()
    saved.merge_from_file(str(tmp_path / "run" / "config.yaml"))
    assert saved.SOLVER.BASE_LR == pytest.approx(0.123) and saved.SEED == 7
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "World size: 1" in log and "PyTorch" in log and "Seeded the random generators of rank 0 with 7" in log
    import random

    first = random.random()
    default_setup(cfg, args)
    assert random.random() == first  # same SEED, same stream
