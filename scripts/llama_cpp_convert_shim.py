#!/usr/bin/python3
# Used by scripts/compare_llama_cpp.sh: python3 llama_cpp_convert_shim.py convert_hf_to_gguf.py ARGS...
# Runs llama.cpp's convert_hf_to_gguf.py unmodified under Debian's torch 1.13: the newer dtypes
# it names only in a lookup table get stand-ins, and torch.load drops the mmap/weights_only
# arguments 1.13 does not know (the checkpoint is a plain tensor dict written by torch.save).
import runpy, sys, torch
for name, standin in (("float8_e4m3fn", torch.float16), ("float8_e5m2", torch.float16),
                      ("uint16", torch.int16), ("uint32", torch.int32), ("uint64", torch.int64)):
    if not hasattr(torch, name):
        setattr(torch, name, standin)
_load = torch.load
def load(*args, **kwargs):
    kwargs.pop("mmap", None)
    kwargs.pop("weights_only", None)
    return _load(*args, **kwargs)
torch.load = load
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
