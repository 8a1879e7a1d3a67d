"""Every checkpoint operation of vsrdata, one home each (import from here or from the submodule):

- io.py: `load_object` / `load_dict` (torch.load weights_only, one-line CheckpointError),
  `save_atomic` (temporary + fsync + rename), `remove_dead_writers_temps`.
- keys.py: renaming of original-EDVR / mmagic names, prefix stripping, key-style detection,
  `bare_model` (the one model unwrapper).
- weights.py: `read_checkpoint` / `unwrap_checkpoint` (any family's file -> BasicSR names),
  `basicsr_param_key` (which entry BasicSR's `param_key_g` reads),
  `compare_state_dicts`, `load_weights`, the formats and `model_config_dict` (the one config key).
- convert.py: `infer_config`, `preset_name`, `expected_shapes`, `weights_object`, `convert_checkpoint`.
- train_state.py: training checkpoints of a run (list, resume, prune), RNG state.
- init.py: `init_from_checkpoint` (non-strict, woTSA -> TSA), `init_deep_from_shallow` (tiling).
"""

from vsrdata.edvr.checkpoint.convert import (ConvertResult, convert_checkpoint, expected_shapes, infer_config,
                                             preset_name, weights_object)
from vsrdata.edvr.checkpoint.io import load_dict, load_object, remove_dead_writers_temps, save_atomic
from vsrdata.edvr.checkpoint.keys import (bare_model, detect_key_style, rename_mmagic_key, rename_original_key,
                                          strip_prefixes)
from vsrdata.edvr.checkpoint.weights import (TRAIN_FORMAT, TRAIN_FORMATS, VSRDATA_FORMAT, WRAPPER_KEYS, LoadedCheckpoint,
                                             LoadReport, basicsr_param_key, compare_state_dicts, load_weights,
                                             model_config_dict, read_checkpoint, read_state_dict, unwrap_checkpoint)

__all__ = ["ConvertResult", "convert_checkpoint", "expected_shapes", "infer_config", "preset_name",
           "weights_object", "load_dict", "load_object", "remove_dead_writers_temps", "save_atomic",
           "bare_model", "detect_key_style", "rename_mmagic_key", "rename_original_key", "strip_prefixes",
           "TRAIN_FORMAT", "TRAIN_FORMATS", "VSRDATA_FORMAT", "WRAPPER_KEYS", "LoadedCheckpoint", "LoadReport",
           "basicsr_param_key", "compare_state_dicts", "load_weights", "model_config_dict", "read_checkpoint",
           "read_state_dict", "unwrap_checkpoint"]
